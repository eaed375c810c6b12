"""What a backbone's feature maps are, in the form detection and segmentation frameworks read.

Frameworks written against timm ask a backbone for ``feature_info.channels()``,
``.reduction()`` and ``.module_name()`` to size their necks; :class:`FeatureInfo` answers the
same calls with the same meaning (``idx=None``: the selected stages; an int or list: stages by
index, whatever is selected). It is derived from the stage specs, so it cannot disagree with
the modules. No torch here.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from .spec import ModelSpec

Index = Optional[Union[int, Sequence[int]]]


class FeatureInfo:
    """One dict per stage (``num_chs``, ``reduction``, ``module``, ``index``) and the selection."""

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: Sequence[int]):
        self.info = [dict(d) for d in info]
        self.out_indices = tuple(out_indices)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "FeatureInfo":
        """Every configured stage, as timm lists them; a backbone does not build those after its last selected one."""
        info = [
            {"num_chs": dim, "reduction": reduction, "module": f"stages.{i}", "index": i}
            for i, (dim, reduction) in enumerate(spec.stage_outputs)
        ]
        return cls(info, spec.out_indices if spec.out_indices is not None else range(len(info)))

    def get(self, key: str, idx: Index = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (list, tuple)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Optional[Sequence[str]] = None, idx: Index = None) -> Any:
        def pick(i: int) -> dict[str, Any]:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        if isinstance(idx, (list, tuple)):
            return [pick(i) for i in idx]
        return pick(idx)

    def channels(self, idx: Index = None) -> Any:
        """Channels of each selected map (or of the stages ``idx`` names)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: Index = None) -> Any:
        """Output stride of each selected map: input pixels per map pixel along a side."""
        return self.get("reduction", idx)

    def module_name(self, idx: Index = None) -> Any:
        """The module producing each selected map, e.g. ``stages.1``."""
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo(out_indices={self.out_indices}, channels={self.channels()}, reduction={self.reduction()})"
