"""What a search optimises: metrics of the jobs' summary.json, each maximised or minimised.

``search.objectives`` names the metrics; ``hydra.sweeper.direction`` (Hydra's key) gives a
direction per objective, or null for each metric's natural one (:data:`NATURAL`). An objective
that no task reports is refused before the first trial; one a job did not report fails that
trial, saying which metric was missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..config import ConfigError, Problem
from ..config.checks import suggest

MAXIMIZE, MINIMIZE = "maximize", "minimize"
LATENCY = "latency_ms"  # measured in the job when an objective (lucid_arch.search.trial)

# The natural direction of the metrics the tasks report (cli/summary.py, cli/train.py, latency).
NATURAL = {
    "val_acc": MAXIMIZE,
    "best_val_acc": MAXIMIZE,
    "val_miou": MAXIMIZE,  # a segmentation model's
    "best_val_miou": MAXIMIZE,
    "val_pixel_acc": MAXIMIZE,
    "val_box_ap": MAXIMIZE,  # a detector's
    "best_val_box_ap": MAXIMIZE,
    "val_mask_ap": MAXIMIZE,
    "gflops": MINIMIZE,
    "params": MINIMIZE,
    LATENCY: MINIMIZE,
    "train img/s": MAXIMIZE,
    "train min": MINIMIZE,
}


@dataclass(frozen=True)
class Objectives:
    names: tuple[str, ...]
    directions: tuple[str, ...]

    def values(self, metrics: Mapping[str, Any]) -> list[float]:
        """The objectives' values among a job's metrics; ValueError naming what is missing."""
        missing = [n for n in self.names if not _finite(metrics.get(n))]
        if missing:
            have = ", ".join(sorted(metrics)) or "none"
            raise ValueError(f"the job reported no finite {', '.join(missing)} (its metrics: {have}), so the trial has no "
                             f"objective value; pick search.objectives among its metrics")
        return [float(metrics[n]) for n in self.names]

    def describe(self) -> str:
        return ", ".join(f"{n} ({d[:3]})" for n, d in zip(self.names, self.directions))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def objectives_of(names: Sequence[str], direction: Any) -> Objectives:
    """Validate ``search.objectives`` and ``hydra.sweeper.direction`` together."""
    names = [str(n) for n in (names or [])]
    if not names or len(set(names)) != len(names):
        raise ConfigError([Problem("search.objectives", f"search.objectives = {names}: name one metric or more, each "
                                   f"once, e.g. [val_acc, gflops].")])
    if direction is None:
        unknown = [n for n in names if n not in NATURAL]
        if unknown:
            raise ConfigError([Problem("hydra.sweeper.direction", (
                f"{', '.join(unknown)} has no natural direction{suggest(unknown[0], NATURAL)}; set hydra.sweeper.direction="
                f"[{', '.join('maximize' if NATURAL.get(n) == MAXIMIZE else 'minimize' for n in names)}] (one per objective)."))])
        directions = [NATURAL[n] for n in names]
    else:
        directions = [str(direction)] if isinstance(direction, str) else [str(d) for d in direction]
        if len(directions) != len(names) or any(d not in (MAXIMIZE, MINIMIZE) for d in directions):
            raise ConfigError([Problem("hydra.sweeper.direction", (
                f"hydra.sweeper.direction = {directions}: give maximize or minimize for each of the {len(names)} "
                f"search.objectives ({', '.join(names)}), or null for their natural directions."))])
    return Objectives(tuple(names), tuple(directions))


def first_of(objectives: Objectives, direction: str) -> Optional[str]:
    return next((n for n, d in zip(objectives.names, objectives.directions) if d == direction), None)
