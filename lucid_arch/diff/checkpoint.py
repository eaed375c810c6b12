"""Would a checkpoint of OLD load into NEW? Answered from shapes alone.

Both models are built on the ``meta`` device, so their state dicts have every key and shape
and no storage: pvt_huge costs the same as b0, and no weights are ever allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class CheckpointCompat:
    kept: int  # same key, same shape
    reshaped: tuple[tuple[str, Shape, Shape], ...]  # key, old shape, new shape
    added: tuple[tuple[str, Shape], ...]  # only in NEW: missing when loading OLD's checkpoint
    removed: tuple[tuple[str, Shape], ...]  # only in OLD: unexpected when loading into NEW

    @property
    def strict(self) -> bool:
        """``NEW.load_state_dict(OLD.state_dict(), strict=True)`` would succeed."""
        return not (self.reshaped or self.added or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strict": self.strict,
            "kept": self.kept,
            "reshaped": [{"key": k, "old": list(o), "new": list(n)} for k, o, n in self.reshaped],
            "added": [{"key": k, "shape": list(s)} for k, s in self.added],
            "removed": [{"key": k, "shape": list(s)} for k, s in self.removed],
        }


def state_shapes(config: Any) -> dict[str, Shape]:
    """Key -> shape of the state dict a model of ``config`` saves (built on the meta device)."""
    import torch

    from ..builder import build_model

    with torch.device("meta"):
        model = build_model(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def compatibility(old: dict[str, Shape], new: dict[str, Shape]) -> CheckpointCompat:
    """Compare two state-dict layouts, keys in NEW's order (then OLD's for removed ones)."""
    return CheckpointCompat(
        kept=sum(1 for k, s in new.items() if old.get(k) == s),
        reshaped=tuple((k, old[k], s) for k, s in new.items() if k in old and old[k] != s),
        added=tuple((k, s) for k, s in new.items() if k not in old),
        removed=tuple((k, s) for k, s in old.items() if k not in new),
    )
