"""The comparison itself: two resolved sides in, one plain :class:`DiffReport` out.

Renderers only format this report, so the terminal, markdown and JSON outputs cannot
disagree about what changed. Fields are compared on the composed, validated configs (what
the builder sees), never on YAML text, so inherited values count and list elements align by
stage rather than by line.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from ..config.checks import to_plain_dict
from ..config.schema import SECTIONS, field_names
from .checkpoint import CheckpointCompat, Shape, compatibility, state_shapes
from .sides import Side

# StageReport attribute -> column heading, in table order.
STAGE_COLUMNS = (
    ("embed_dim", "dims"),
    ("depth", "depth"),
    ("num_heads", "heads"),
    ("head_dim", "head dim"),
    ("sr_ratio", "sr ratio"),
    ("kv_tokens", "kv tokens"),
    ("linear", "linear"),
    ("mlp_ratio", "mlp ratio"),
)
# Fields that label a config or pick its initial weights rather than shape it; changing only
# these is listed but is no architectural change.
NON_ARCHITECTURAL = frozenset({"name", "pretrained", "checkpoint", "new_head"})


@dataclass(frozen=True)
class FieldChange:
    key: str  # model.depths[2], or model.depths when the list length changed
    old: Any
    new: Any
    old_source: Optional[str]
    new_source: Optional[str]

    @property
    def architectural(self) -> bool:
        return self.key.removeprefix("model.").split("[")[0] not in NON_ARCHITECTURAL


@dataclass(frozen=True)
class StageRow:
    index: int
    old: Optional[dict[str, Any]]  # None: the stage is new
    new: Optional[dict[str, Any]]  # None: the stage was removed
    changed: tuple[str, ...]  # STAGE_COLUMNS keys that differ

    @property
    def status(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed" if self.changed else "same"


@dataclass(frozen=True)
class CostRow:
    label: str  # "stage 0", "head", "total"
    old_params: Optional[int]
    new_params: Optional[int]
    old_flops: Optional[int]
    new_flops: Optional[int]


@dataclass(frozen=True)
class SideSummary:
    role: str
    spec: str
    overrides: tuple[str, ...]
    kind: str
    name: Optional[str]
    img_size: Any  # the config's: one side or [height, width]; None when invalid
    valid: bool
    problems: tuple[dict[str, Optional[str]], ...]  # key, message, source
    chain: tuple[str, ...]


@dataclass(frozen=True)
class DiffReport:
    old: SideSummary
    new: SideSummary
    fields: tuple[FieldChange, ...]
    stages: tuple[StageRow, ...]
    costs: tuple[CostRow, ...]
    checkpoint: Optional[CheckpointCompat]

    @property
    def comparable(self) -> bool:
        return self.old.valid and self.new.valid

    @property
    def sides(self) -> tuple[SideSummary, ...]:
        """OLD and NEW, or the one side of a report that validates and costs a config on its own."""
        return (self.old,) if self.old == self.new else (self.old, self.new)

    @property
    def architectural_change(self) -> bool:
        return any(f.architectural for f in self.fields)

    @property
    def exit_code(self) -> int:
        """As ``diff``: 0 the same architecture, 1 changes, 2 trouble (a side is invalid)."""
        if not self.comparable:
            return 2
        return 1 if self.architectural_change else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checkpoint"] = self.checkpoint.to_dict() if self.checkpoint else None
        out["stages"] = [{**asdict(s), "status": s.status} for s in self.stages]
        out["architectural_change"] = self.architectural_change
        out["exit_code"] = self.exit_code
        return out


def compare(old: Side, new: Side) -> DiffReport:
    """Everything a reviewer needs about OLD -> NEW; torch is only touched for valid pairs."""
    summaries = _summary(old), _summary(new)
    if not (old.valid and new.valid):
        return DiffReport(*summaries, fields=(), stages=(), costs=(), checkpoint=None)
    (old_report, old_shapes), (new_report, new_shapes) = _analysed(old.config), _analysed(new.config)
    return DiffReport(
        *summaries,
        fields=tuple(field_changes(old, new)),
        stages=tuple(_stage_rows(old_report, new_report)),
        costs=tuple(_cost_rows(old_report, new_report)),
        checkpoint=compatibility(old_shapes, new_shapes),
    )


_ANALYSED: OrderedDict[str, tuple[Any, dict[str, Shape]]] = OrderedDict()
_ANALYSED_MAX = 64


def _analysed(config: Any) -> tuple[Any, dict[str, Shape]]:
    """:func:`~lucid_arch.perf.analysis.analyze` and :func:`state_shapes` of a config, each config
    analysed once per process (a review compares every unchanged variant with itself, and a
    session compares the same variants again); keyed by the config's canonical JSON."""
    from ..perf.analysis import analyze  # imports torch; validation-only runs never pay for it

    try:
        key = json.dumps(to_plain_dict(config), sort_keys=True)
    except TypeError:  # a value JSON cannot spell: analysed as it is, not kept
        return analyze(config), state_shapes(config)
    if key not in _ANALYSED:
        _ANALYSED[key] = analyze(config), state_shapes(config)
        if len(_ANALYSED) > _ANALYSED_MAX:
            _ANALYSED.popitem(last=False)
    _ANALYSED.move_to_end(key)
    report, shapes = _ANALYSED[key]
    return report, dict(shapes)


def field_changes(old: Side, new: Side) -> list[FieldChange]:
    """Changed fields as key paths; equal-length lists are compared element by element, sections field by field."""
    out: list[FieldChange] = []
    for name in field_names():
        a, b = getattr(old.config, name), getattr(new.config, name)
        if name in SECTIONS:  # model.decode_head.channels, ...
            for f in fields(SECTIONS[name]):
                key = f"{name}.{f.name}"
                sources = old.sources.get(key), new.sources.get(key)
                out += _value_changes(f"model.{key}", getattr(a, f.name), getattr(b, f.name), sources)
        else:
            out += _value_changes(f"model.{name}", a, b, (old.sources.get(name), new.sources.get(name)))
    return out


def _value_changes(key: str, a: Any, b: Any, sources: tuple[Optional[str], Optional[str]]) -> list[FieldChange]:
    if a == b and type(a) is type(b):
        return []
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [FieldChange(f"{key}[{i}]", x, y, *sources) for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return [FieldChange(key, a, b, *sources)]


def _summary(side: Side) -> SideSummary:
    cfg = side.config
    problems = tuple({"key": p.key, "message": p.message, "source": side.source_of(p)} for p in side.problems)
    return SideSummary(
        role=side.role,
        spec=side.spec,
        overrides=side.overrides,
        kind=side.kind,
        name=cfg.name if cfg else None,
        img_size=cfg.img_size if cfg else None,
        valid=side.valid,
        problems=problems,
        chain=side.chain,
    )


def _stage_rows(old, new) -> list[StageRow]:
    rows = []
    for i in range(max(len(old.stages), len(new.stages))):
        a = _stage_cells(old.stages[i]) if i < len(old.stages) else None
        b = _stage_cells(new.stages[i]) if i < len(new.stages) else None
        changed = tuple(k for k, _ in STAGE_COLUMNS if a and b and a[k] != b[k])
        rows.append(StageRow(i, a, b, changed))
    return rows


def _stage_cells(stage) -> dict[str, Any]:
    return {k: getattr(stage, k) for k, _ in STAGE_COLUMNS}


def _cost_rows(old, new) -> list[CostRow]:
    def part(report, i):
        return (report.stages[i].params, report.stages[i].flops) if i < len(report.stages) else (None, None)

    rows = []
    for i in range(max(len(old.stages), len(new.stages))):
        (op, of), (np_, nf) = part(old, i), part(new, i)
        rows.append(CostRow(f"stage {i}", op, np_, of, nf))
    # analyze() reports totals as stages + parts (a classifier's head, or a neck and a decode head),
    # so the rows below add up exactly; a part only one side has is blank on the other.
    olds, news = ({p.label: p for p in r.parts} for r in (old, new))
    for label in [*olds, *(k for k in news if k not in olds)]:
        a, b = olds.get(label), news.get(label)
        rows.append(CostRow(label, a and a.params, b and b.params, a and a.flops, b and b.flops))
    rows.append(CostRow("total", old.params, new.params, old.flops, new.flops))
    return rows
