"""The job config's ``search`` node (conf/search/default.yaml), checked and typed.

It lives in the job config rather than under ``hydra.sweeper`` so that every job's config.yaml
records what its search optimised and refused; the sweeper reads it from the composed config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import OmegaConf

from ..config import ConfigError, Problem


@dataclass(frozen=True)
class LatencySettings:
    batch_size: int = 1
    warmup: int = 3
    repeats: int = 20
    threads: Optional[int] = 1  # torch threads while timing; null: as the job has them


@dataclass(frozen=True)
class SearchSettings:
    objectives: tuple[str, ...] = ("val_acc", "gflops")
    max_gflops: Optional[float] = None  # budgets, from the closed-form analysis
    max_params: Optional[int] = None
    baseline: bool = False  # the first trial is the base config (its values must be in the space)
    latency: LatencySettings = LatencySettings()


def _positive(problems: list[Problem], key: str, value: Any, kind: type, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return None
    # nan compares false with everything, so "value <= 0" lets it through: a budget of nan would refuse nothing.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (kind is int and not float(value).is_integer()) or value <= 0:
        unlimited = " (null sets no limit; nan and inf are not numbers a budget can compare with)" if allow_none else ""
        problems.append(Problem(key, f"{key} = {value!r}: give a positive {'integer' if kind is int else 'number'}"
                                     f"{' or null' if allow_none else ''}{unlimited}."))
        return None
    return kind(value)


def settings_of(cfg: Any) -> SearchSettings:
    """The search settings of a composed config; defaults where it has no ``search`` node."""
    node = OmegaConf.select(cfg, "search", default=None)
    raw = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    unknown = sorted(set(raw) - {"objectives", "max_gflops", "max_params", "baseline", "latency"})
    problems = [Problem(f"search.{k}", f"search.{k}: no such search setting; the settings are objectives, max_gflops, "
                                       f"max_params, baseline and latency.") for k in unknown]
    objectives = raw.get("objectives", list(SearchSettings.objectives))
    if isinstance(objectives, str):
        objectives = [objectives]
    if not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives):
        problems.append(Problem("search.objectives", f"search.objectives = {objectives!r}: give a list of metric names, e.g. [val_acc, gflops]."))
        objectives = list(SearchSettings.objectives)
    baseline = raw.get("baseline", False)
    if not isinstance(baseline, bool):
        problems.append(Problem("search.baseline", f"search.baseline = {baseline!r}: give true or false."))
    lat = raw.get("latency") or {}
    warmup = lat.get("warmup", 3)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        problems.append(Problem("search.latency.warmup", f"search.latency.warmup = {warmup!r}: give 0 or more untimed runs."))
        warmup = 3
    latency = LatencySettings(
        batch_size=_positive(problems, "search.latency.batch_size", lat.get("batch_size", 1), int, False) or 1,
        warmup=warmup,
        repeats=_positive(problems, "search.latency.repeats", lat.get("repeats", 20), int, False) or 20,
        threads=_positive(problems, "search.latency.threads", lat.get("threads", 1), int),
    )
    settings = SearchSettings(
        objectives=tuple(objectives),
        max_gflops=_positive(problems, "search.max_gflops", raw.get("max_gflops"), float),
        max_params=_positive(problems, "search.max_params", raw.get("max_params"), int),
        baseline=bool(baseline),
        latency=latency,
    )
    if problems:
        raise ConfigError(problems)
    return settings
