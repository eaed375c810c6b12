"""The search space, read from Hydra's override syntax, and each trial's overrides.

``hydra.sweeper.params`` (and sweep overrides on the command line, which take precedence, as in
Hydra's Optuna plugin) map a key to ``choice(...)`` / ``a,b,c`` / ``glob(...)`` (a categorical),
``range(start, stop[, step])`` (integers or floats on a grid), ``interval(low, high)`` (a
continuum), ``tag(int, interval(...))`` (the integers in it) or ``tag(log, interval(...))``
(sampled on a log scale; ``tag(int, log, interval(...))`` both).
A plain value is fixed for every trial. Choices are kept as the override text of each value, so
a list is a choice like any other (``model.depths: choice([2,2,2,2],[3,4,6,3])``) and the study
stores what the job was given, verbatim.
"""

from __future__ import annotations

import math
from decimal import Decimal
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ..config import ConfigError, Problem

CHOICE, INT, FLOAT = "choice", "int", "float"
MAX_GRID = 10_000  # values of a float range(...), each a choice of the study


@dataclass(frozen=True)
class Dim:
    """One searched key: its override key, and the values a trial may give it."""

    key: str  # as written on the left of "=": model.depths, model (a config group), +model.new
    kind: str  # CHOICE, INT or FLOAT
    choices: tuple[str, ...] = ()  # CHOICE: each value as override text
    low: float = 0.0
    high: float = 0.0
    step: Optional[float] = None  # INT / FLOAT on a grid (range); None: a continuum (interval)
    log: bool = False

    @property
    def name(self) -> str:
        """The parameter's name in the study: the key without + / ++ / ~."""
        return self.key.lstrip("+~")

    def distribution(self) -> Any:
        import optuna.distributions as d

        if self.kind == CHOICE:
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == INT:
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def override(self, value: Any) -> str:
        """The override a trial's value of this key becomes."""
        if self.kind == INT:
            return f"{self.key}={int(value)}"
        if self.kind == FLOAT:
            return f"{self.key}={float(value)!r}"
        return f"{self.key}={value}"

    def describe(self) -> str:
        """The dimension in Hydra's syntax, as the report and the ledger show it."""
        if self.kind == CHOICE:
            return f"choice({', '.join(self.choices)})"
        fmt = (lambda v: str(int(v))) if self.kind == INT else repr
        if self.step is not None:
            return f"range({fmt(self.low)}, {fmt(self.high)}, step={fmt(self.step)}) (last value included)"
        text = f"interval({fmt(self.low)}, {fmt(self.high)})"
        return f"tag(log, {text})" if self.log else text


@dataclass(frozen=True)
class SearchSpace:
    dims: tuple[Dim, ...]
    fixed: tuple[str, ...]  # overrides every trial gets (the command line's plain ones, params' fixed values)

    def distributions(self) -> dict[str, Any]:
        return {d.name: d.distribution() for d in self.dims}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then one per searched key."""
        return [*self.fixed, *(d.override(params[d.name]) for d in self.dims)]

    def describe(self) -> dict[str, str]:
        return {d.key: d.describe() for d in self.dims}


def _problem(key: str, message: str) -> ConfigError:
    return ConfigError([Problem(f"hydra.sweeper.params.{key}", message)])


def _number(value: Any) -> bool:
    """A finite int or float (nan and inf would make a range endless and an interval unbounded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def dim_of(override: Any, options: Callable[[str], list[str]]) -> Optional[Dim]:
    """The dimension an override sweeps, or None for a plain (fixed) value.

    ``override`` is a parsed Hydra override; ``options(group)`` lists a config group's options
    (for ``glob(...)``).
    """
    from hydra.core.override_parser.types import ValueType

    key = override.get_key_element()
    line = override.input_line or key
    if not override.is_sweep_override():
        return None
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        picked = override.value().filter(options(override.key_or_group))
        if not picked:
            raise _problem(key, f"{line}: the pattern matches no {override.key_or_group} option.")
        return Dim(key, CHOICE, tuple(picked))
    if override.is_choice_sweep():
        choices = tuple(dict.fromkeys(override.sweep_string_iterator()))
        if not choices:
            raise _problem(key, f"{line}: a choice needs at least one value.")
        return Dim(key, CHOICE, choices)
    if override.is_range_sweep():
        return _range_dim(key, line, override.value())
    if override.is_interval_sweep():
        sweep = override.value()
        low, high, log = sweep.start, sweep.end, "log" in sweep.tags
        if not (_number(low) and _number(high)) or not low < high:
            raise _problem(key, f"{line}: an interval needs two finite numbers, the lower first.")
        if log and low <= 0:
            raise _problem(key, f"{line}: a log-scale interval needs a positive lower end.")
        if "int" in sweep.tags:  # Hydra reads interval's ends as floats: integers are asked for by tag
            if not (float(low).is_integer() and float(high).is_integer()):
                raise _problem(key, f"{line}: tag(int, ...) needs whole-number ends.")
            return Dim(key, INT, low=int(low), high=int(high), log=log)
        return Dim(key, FLOAT, low=float(low), high=float(high), log=log)
    raise _problem(key, f"{line}: not a search dimension; use choice(...), range(...), interval(...) or tag(log|int, interval(...)).")


def _range_dim(key: str, line: str, sweep: Any) -> Dim:
    """``range(start, stop[, step])``: its size and ends computed, never its values listed, unless it is a
    float grid (searched as a list of its values, so bounded by :data:`MAX_GRID`)."""
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if not all(_number(v) for v in (start, stop, step)):
        raise _problem(key, f"{line}: a range needs finite numbers for its start, stop and step.")
    if step == 0:
        raise _problem(key, f"{line}: the step is 0; give a step that moves from the start toward the stop.")
    empty = f"{line}: the range is empty (range stops before its stop value, as Python's does)."
    if all(isinstance(v, int) for v in (start, stop, step)):
        values = range(start, stop, step)  # its length and ends in constant time, however long it is
        if not values:
            raise _problem(key, empty)
        return Dim(key, INT, low=min(values[0], values[-1]), high=max(values[0], values[-1]), step=abs(step))
    count = math.ceil((Decimal(stop) - Decimal(start)) / Decimal(step))  # what Hydra's FloatRange yields
    if count <= 0:
        raise _problem(key, empty)
    if count > MAX_GRID:
        raise _problem(key, f"{line}: {count:,} values; a range of floats is searched as the list of its values, at most "
                            f"{MAX_GRID:,}. Use a larger step, or interval({start}, {stop}) for a continuum.")
    return Dim(key, CHOICE, tuple(dict.fromkeys(repr(float(v)) for v in sweep.range())))  # float grids: exact values


def parse_space(params: Optional[Mapping[str, Any]], arguments: Sequence[str], parser: Any,
                options: Callable[[str], list[str]]) -> SearchSpace:
    """The space of ``hydra.sweeper.params`` plus the command line's overrides (which win, key by key).

    ``parser`` is Hydra's OverridesParser; every problem names its key.
    """
    lines = [f"{k}={_text(v)}" for k, v in (params or {}).items()] + list(arguments)
    try:
        parsed = parser.parse_overrides(lines)
    except Exception as error:  # noqa: BLE001 -- Hydra's grammar error, said in its own words
        raise ConfigError([Problem("hydra.sweeper.params", f"{' '.join(str(error).split())}")]) from None
    by_key: dict[str, Any] = {}
    for override in parsed:
        by_key.pop(override.get_key_element(), None)
        by_key[override.get_key_element()] = override  # a later (command-line) one replaces an earlier
    dims, fixed = [], []
    for override in by_key.values():
        dim = dim_of(override, options)
        if dim is None:
            fixed.append(override.input_line)
        else:
            dims.append(dim)
    if not dims:
        raise ConfigError([Problem("hydra.sweeper.params", "the search space is empty: give hydra.sweeper.params "
                                   "(e.g. model.depths: choice([2,2,2,2],[3,4,6,3])) or a sweep on the command line.")])
    return SearchSpace(tuple(dims), tuple(fixed))


def _text(value: Any) -> str:
    """A params value as override text (YAML may have read ``choice(1,2)`` as a string, ``3`` as an int)."""
    if isinstance(value, str):
        return value
    from hydra.core.override_parser.types import Override

    return Override._get_value_element_as_str(value)


def contains(dim: Dim, value: Any, parse: Callable[[str], Any]) -> Optional[Any]:
    """The parameter value of ``dim`` that stands for the config value ``value``, or None if it has none.

    ``parse(text)`` reads an override value (so ``[2,2,2,2]`` matches the list it spells).
    """
    if dim.kind == CHOICE:
        return next((c for c in dim.choices if _same(parse(c), value)), None)
    if not _number(value) or not dim.low <= value <= dim.high:
        return None
    if dim.step is not None and not math.isclose((value - dim.low) / dim.step, round((value - dim.low) / dim.step)):
        return None
    return int(value) if dim.kind == INT else float(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def key_of(overrides: Iterable[str]) -> tuple[str, ...]:
    """A candidate's identity (repeated proposals of a discrete space are answered, not re-run)."""
    return tuple(sorted(overrides))
