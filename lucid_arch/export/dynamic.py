"""Which input sizes an exported model accepts: fixed, or a range per dimension, and why that range.

torch.export traces the model once, with sizes as symbols, and records every decision a
size took (a view that needs a dimension above 1, a convolution that needs its kernel to
fit). It refuses a declared range where some size inside it would have gone another way.
For a PVT two things bound the range from below, both read from the stage geometry
(:mod:`lucid_arch.config.geometry`), never hard-coded:

- torch.export specialises a size of 1 (a 1-px map broadcasts, and views of it take another
  path), so every stage's map must stay at least 2 px;
- keys and values reduced by a strided convolution (``sr_ratio > 1``, not linear) come from a
  map ``sr_ratio`` times smaller, which must itself stay at least 2 px: the stage's map at least
  ``2 * sr_ratio``. Linear attention pools to 7x7 from any size, so only the first rule binds.

No multiple-of-32 constraint is needed: the patch embeddings' floor divisions are traced
symbolically, so every integer side inside the range runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from ..config.export_schema import DIMS, MAX_SIDE
from ..config.geometry import conv_out, size_text
from ..modeling.model import PyramidVisionTransformer
from ..modeling.spec import ModelSpec, StageSpec

AXES = {"batch": 0, "height": 2, "width": 3}
MIN_BATCH = 1
TRACE_BATCH = 2  # a traced size of 1 would be fixed at 1, so a dynamic batch is traced at 2


class ExportSettingError(ValueError):
    """A setting that cannot work for this model; ``key`` names it (task.KEY in the app)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def find_spec(model: nn.Module) -> Optional[ModelSpec]:
    """The PVT inside ``model`` (the model itself, or a backbone of a wrapper), or None."""
    for module in model.modules():
        if isinstance(module, PyramidVisionTransformer):
            return module.spec
    return None


def _smallest_map(stage: StageSpec) -> int:
    reduced = stage.sr_ratio > 1 and not stage.linear
    return 2 * stage.sr_ratio if reduced else 2


def smallest_side(spec: ModelSpec) -> int:
    """The smallest image side whose every stage map obeys the two rules above."""
    need = [_smallest_map(s) for s in spec.stages]
    for side in range(1, MAX_SIDE + 1):  # conv_out grows with the side, so the first side that fits bounds the range
        size, ok = side, True
        for stage, smallest in zip(spec.stages, need):
            size = conv_out(size, stage.patch)
            ok = ok and size >= smallest
        if ok:
            return side
    raise ExportSettingError("min_side", f"no image side up to {MAX_SIDE} px gives every stage of {spec.name} a map of at least 2 px.")


@dataclass(frozen=True)
class InputShapes:
    """The exported input: (batch, channels, height, width) as traced, and the range of each dynamic dimension."""

    sample: tuple[int, int, int, int]
    ranges: dict[str, tuple[int, Optional[int]]] = field(default_factory=dict)  # dim -> (min, max or None: unbounded)

    @property
    def size(self) -> tuple[int, int]:
        return self.sample[2], self.sample[3]

    def example(self) -> torch.Tensor:
        """A traced input of the sample's shape; its values do not matter, and the global RNG is left alone."""
        return torch.randn(self.sample, generator=torch.Generator().manual_seed(0))

    def dynamic_shapes(self) -> Optional[tuple[dict[int, Any]]]:
        """torch.export's ``dynamic_shapes`` for the one positional input; None when every size is fixed."""
        from torch.export import Dim

        if not self.ranges:
            return None
        return ({AXES[d]: Dim(d, min=lo, max=hi) if hi is not None else Dim(d, min=lo) for d, (lo, hi) in self.ranges.items()},)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        for d, axis in AXES.items():
            lo, hi = self.ranges.get(d, (self.sample[axis], self.sample[axis]))
            if shape[axis] < lo or (hi is not None and shape[axis] > hi):
                return False
        return shape[1] == self.sample[1]

    def describe(self) -> dict[str, Any]:
        """For summary.json: each dimension's range, or its fixed size."""
        out: dict[str, Any] = {}
        for d, axis in AXES.items():
            lo, hi = self.ranges.get(d, (self.sample[axis], self.sample[axis]))
            out[d] = self.sample[axis] if d not in self.ranges else {"min": lo, "max": hi}
        out["channels"] = self.sample[1]
        return out

    def text(self) -> str:
        parts = []
        for d, axis in AXES.items():
            if d in self.ranges:
                lo, hi = self.ranges[d]
                parts.append(f"{d} {lo}..{'' if hi is None else hi}")
            else:
                parts.append(f"{d} {self.sample[axis]}")
        return ", ".join(parts)


def input_shapes(
    model: nn.Module,
    img_size: tuple[int, int],
    in_channels: int,
    dynamic: tuple[str, ...],
    batch_size: int = 1,
    min_side: Optional[int] = None,
    max_side: int = 4096,
) -> InputShapes:
    """The shapes to export ``model`` with; :class:`ExportSettingError` when the export size falls outside them."""
    unknown = [d for d in dynamic if d not in DIMS]
    if unknown:
        raise ExportSettingError("dynamic", f"dynamic = {list(dynamic)}: {unknown[0]!r} is not one of {', '.join(DIMS)}.")
    spatial = [d for d in ("height", "width") if d in dynamic]
    if spatial and min_side is None:
        spec = find_spec(model)
        if spec is None:
            raise ExportSettingError("min_side", "this model holds no PyramidVisionTransformer to read its smallest input "
                                     "from: give min_side (the smallest height and width it runs at).")
        min_side = smallest_side(spec)
    ranges: dict[str, tuple[int, Optional[int]]] = {}
    if "batch" in dynamic:
        ranges["batch"] = (MIN_BATCH, None)
    for d in spatial:
        ranges[d] = (int(min_side), int(max_side))
    if spatial and min_side > max_side:
        raise ExportSettingError("max_side", f"max_side = {max_side} is below the smallest side {min_side} this model runs at.")
    for d, side in zip(("height", "width"), img_size):
        if d in ranges and not ranges[d][0] <= side <= ranges[d][1]:
            lo, hi = ranges[d]
            raise ExportSettingError(
                "min_side" if side < lo else "max_side",
                f"the export size {size_text(img_size)} (model.img_size) has a {d} outside the dynamic range {lo}..{hi}: "
                f"export at a size inside it (model.img_size), or widen the range (min_side, max_side).",
            )
    batch = TRACE_BATCH if "batch" in dynamic else batch_size
    return InputShapes((batch, in_channels, img_size[0], img_size[1]), ranges)
