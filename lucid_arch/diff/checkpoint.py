"""Would a checkpoint of OLD load into NEW? Answered from shapes alone.

Each side's state-dict layout comes from a *probe*: the model with one block per stage,
built on the ``meta`` device (every key and shape, no storage). The blocks of a stage are
identical, so block 0's keys are repeated for the others (``stages.{i}.blocks.{j}.``, the
documented checkpoint layout). The cost is one block per stage whatever the depths: pvt_huge
costs the same as b0, and a reviewed config with 1,000 blocks cannot slow a review down.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Optional

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
    """Key -> shape of the state dict a model of ``config`` saves, in the model's key order."""
    from ..perf.analysis import probe_model
    from ..modeling.builder import resolve_spec

    spec = resolve_spec(config)
    out: dict[str, Shape] = {}
    entries = probe_model(spec).state_dict().items()
    for stage, group in itertools.groupby(entries, key=lambda entry: _block0_stage(entry[0])):
        shapes = [(key, tuple(tensor.shape)) for key, tensor in group]
        if stage is None:
            out.update(shapes)
            continue
        for j in range(spec.stages[stage].depth):  # block 0's keys stand for every block of its stage
            out.update((key.replace(".blocks.0.", f".blocks.{j}.", 1), shape) for key, shape in shapes)
    return out


def _block0_stage(key: str) -> Optional[int]:
    found = re.match(r"^stages\.(\d+)\.blocks\.0\.", key)
    return int(found.group(1)) if found else None


def compatibility(old: dict[str, Shape], new: dict[str, Shape]) -> CheckpointCompat:
    """Compare two state-dict layouts, keys in NEW's order (then OLD's for removed ones)."""
    return CheckpointCompat(
        kept=sum(1 for k, s in new.items() if old.get(k) == s),
        reshaped=tuple((k, old[k], s) for k, s in new.items() if k in old and old[k] != s),
        added=tuple((k, s) for k, s in new.items() if k not in old),
        removed=tuple((k, s) for k, s in old.items() if k not in new),
    )
