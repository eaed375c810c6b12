"""Value and number formatting shared by the terminal and markdown renderers.

Values are written as in the YAML files (true/false/null, [3, 4, 6, 3]) so a reviewer can
copy one straight into a config; counts get thousands separators, FLOPs are in GFLOPs.
"""

from __future__ import annotations

from typing import Any, Optional

from ..config.model_files import quote
from ..config.geometry import image_hw, size_text
from .compare import CostRow, DiffReport, SideSummary

ARROW = "→"
FIRST_FEW = 5  # keys listed before the rest is folded away


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return quote(v)  # a string from a config: control characters escaped, length capped


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def count(n: Optional[int]) -> str:
    return "–" if n is None else f"{n:,}"


def gflops(n: Optional[int]) -> str:
    return "–" if n is None else f"{n / 1e9:.2f}"


def delta(old: Optional[int], new: Optional[int], unit: float = 1.0) -> tuple[str, str]:
    """Absolute and relative change, e.g. ('+56,593,152', '+223.1%'); '–' where undefined."""
    if old is None and new is None:
        return "–", "–"
    a, b = old or 0, new or 0
    if a == b:
        return "0", "0%"
    diff = (b - a) / unit
    absolute = f"{int(diff):+,}" if unit == 1.0 else f"{diff:+,.2f}"
    return absolute, f"{(b - a) / a * 100:+.1f}%" if a else "–"


def cost_cells(row: CostRow) -> list[str]:
    """params old, new, Δ, Δ%, GFLOPs old, new, Δ, Δ%."""
    return [
        count(row.old_params),
        count(row.new_params),
        *delta(row.old_params, row.new_params),
        gflops(row.old_flops),
        gflops(row.new_flops),
        *delta(row.old_flops, row.new_flops, unit=1e9),
    ]


COST_HEADINGS = ["params OLD", "params NEW", "Δ params", "Δ%", "GFLOPs OLD", "GFLOPs NEW", "Δ GFLOPs", "Δ%"]


def change(old: Any, new: Any) -> str:
    return f"{value(old)} {ARROW} {value(new)}"


def sources(old: Optional[str], new: Optional[str]) -> str:
    return value(old) if old == new else f"{value(old)} {ARROW} {value(new)}"


def shape(s: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def side_title(side: SideSummary) -> str:
    return quote(" ".join([side.spec, *side.overrides]), 200)


def sizes(report: DiffReport) -> str:
    """'224x224 px', or '224x224 px → 512x1024 px' when the sides are analysed at different sizes."""
    a, b = (_size(s.img_size) for s in (report.old, report.new))
    return f"{a} px" if a == b else f"{a} px {ARROW} {b} px"


def _size(img_size: Any) -> str:
    return "?" if img_size is None else size_text(image_hw(img_size))


def verdict(report: DiffReport) -> str:
    if not report.comparable:
        bad = [s.role.upper() for s in report.sides if not s.valid]
        return f"{' and '.join(bad)} invalid: cannot compare (exit 2)"
    if report.architectural_change:
        n = sum(1 for f in report.fields if f.architectural)
        return f"architecture changed: {plural(n, 'field')} (exit 1)"
    return "no architectural change (exit 0)"


def checkpoint_summary(report: DiffReport) -> str:
    ck = report.checkpoint
    if ck is None:
        return "not checked (a side is invalid)"
    if ck.strict:
        return f"OLD's state dict loads strictly into NEW ({ck.kept:,} tensors, all shapes kept)"
    return (
        f"OLD's state dict does not load strictly into NEW: {ck.kept:,} tensors keep their shape, "
        f"{len(ck.reshaped):,} change shape, {len(ck.added):,} appear, {len(ck.removed):,} disappear"
    )


def checkpoint_lists(report: DiffReport) -> list[tuple[str, list[str]]]:
    """(heading, lines) for each non-empty list of changed tensors, full length."""
    ck = report.checkpoint
    if ck is None:
        return []
    lists = [
        ("change shape", [f"{k}: {shape(a)} {ARROW} {shape(b)}" for k, a, b in ck.reshaped]),
        ("appear (only in NEW)", [f"{k}: {shape(s)}" for k, s in ck.added]),
        ("disappear (only in OLD)", [f"{k}: {shape(s)}" for k, s in ck.removed]),
    ]
    return [(h, lines) for h, lines in lists if lines]
