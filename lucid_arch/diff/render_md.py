"""Markdown for a GitHub PR comment: tables, ✓/✗ marks, long lists folded, always under the limit.

Everything that comes from a config (names, keys, values, file labels, problem sentences) is
written inside a code span (:func:`code`), where GitHub renders no HTML, no links and no
@mentions, with control characters escaped and backticks fenced; table pipes are escaped.
A comment must stay under GitHub's 65,536 characters: a report is a list of sections, each
with a shorter folded form, and :func:`fit` folds the largest until the whole fits, saying
what was folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from ..config.model_files import quote
from . import fmt
from .compare import STAGE_COLUMNS, DiffReport, SideSummary

GITHUB_COMMENT_LIMIT = 65_536
BUDGET = 60_000  # leaves room for a review's frame around the reports
LIST_LINES = 50  # changed tensors listed per kind before "and N more"


def code(text: object, limit: int = 300) -> str:
    """``text`` as an inert inline code span, safe in a table cell."""
    body = quote(text, limit).replace("|", "\\|")
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body else ""
    return f"{ticks}{pad}{body}{pad}{ticks}"


@dataclass
class Section:
    """Part of a comment, and what it shrinks to when the comment is too long."""

    full: str
    folded: str
    what: str  # named in the "folded to fit" note


def fit(sections: list[Section], budget: int = BUDGET) -> str:
    """Join ``sections``, folding the largest first until the text fits ``budget`` characters."""
    chosen = [s.full for s in sections]
    folded: list[str] = []
    order = sorted(range(len(sections)), key=lambda i: len(sections[i].full) - len(sections[i].folded), reverse=True)
    for i in order:
        if sum(len(t) + 1 for t in chosen) <= budget:
            break
        if len(sections[i].folded) < len(chosen[i]):
            chosen[i] = sections[i].folded
            folded.append(sections[i].what)
    text = "\n".join(chosen)
    if folded:
        note = (
            f"> Folded to fit GitHub's {GITHUB_COMMENT_LIMIT:,}-character comment limit: {', '.join(folded)}. "
            "`lucid-arch-diff` with `--format json` (or in a terminal) shows everything.\n"
        )
        text = note + "\n" + text
    if len(text) > budget:  # only a pathological report gets here; never exceed the limit
        text = text[: budget - 200].rsplit("\n", 1)[0] + "\n\n> … truncated to fit the comment limit.\n"
    return text


def render(report: DiffReport) -> str:
    return fit(sections(report))


def sections(report: DiffReport, heading: str = "###") -> list[Section]:
    """The report's sections, in order; a review nests several reports with a deeper heading."""
    title = f"{heading} `lucid-arch-diff` {code(fmt.side_title(report.old))} {fmt.ARROW} {code(fmt.side_title(report.new))}"
    out = [fixed(title + "\n"), fixed(_sides(report) + "\n")]
    for side in report.sides:
        if side.problems:
            lines = [f"- {code(p['message'], 500)}" + (f" (set in {code(p['source'])})" if p["source"] else "") for p in side.problems]
            head = f"**{side.role.upper()} is invalid** ({fmt.plural(len(side.problems), 'problem')}):"
            out.append(_listed(head, lines, f"{side.role.upper()}'s problem list"))
    if report.comparable:
        out.append(_fields(report))
        out.append(fixed(_stages(report)))
        out.append(fixed(_costs(report)))
        out.append(_checkpoint(report))
    out.append(fixed(f"\n**Result**: {fmt.verdict(report)}\n"))
    return out


def fixed(text: str) -> Section:
    """A section that never folds."""
    return Section(text, text, "")


def _listed(head: str, lines: list[str], what: str, keep: int = 10) -> Section:
    full = "\n".join([head, *lines, ""])
    more = f"- … and {len(lines) - keep:,} more" if len(lines) > keep else None
    folded = "\n".join([head, *lines[:keep], *([more] if more else []), ""])
    return Section(full, folded, what)


def _sides(report: DiffReport) -> str:
    rows = ["| side | spec | status | name | defaults chain |", "|---|---|---|---|---|"]
    return "\n".join(rows + [_side_row(s) for s in report.sides])


def _side_row(side: SideSummary) -> str:
    status = "✓ valid" if side.valid else "✗ invalid"
    chain = f" {fmt.ARROW} ".join(code(c) for c in side.chain[:12]) or "–"
    if len(side.chain) > 12:
        chain += f" {fmt.ARROW} … ({len(side.chain) - 12} more)"
    name = code(side.name) if side.name else "–"
    return f"| {side.role.upper()} | {code(fmt.side_title(side))} | {status} | {name} | {chain} |"


def _fields(report: DiffReport) -> Section:
    if not report.fields:
        return fixed("**Changed fields**: none\n")
    head = f"**Changed fields** ({len(report.fields)})\n\n| key | OLD | NEW | set in (OLD → NEW) |\n|---|---|---|---|"
    rows = [
        f"| {code(f.key)} | {code(fmt.value(f.old))} | {code(fmt.value(f.new))} | {code(fmt.sources(f.old_source, f.new_source))} |"
        for f in report.fields
    ]
    return _listed(head, rows, "changed fields beyond the first 10", keep=10)


def _stages(report: DiffReport) -> str:
    # Stage cells are numbers and booleans of validated configs: nothing in them can be markup.
    out = [f"\n**Stages** at {fmt.sizes(report)} (changed cells in bold)\n"]
    out.append("| stage | " + " | ".join(h for _, h in STAGE_COLUMNS) + " |")
    out.append("|---" * (len(STAGE_COLUMNS) + 1) + "|")
    for row in report.stages:
        if row.status in ("added", "removed"):
            cells = row.new if row.status == "added" else row.old
            mark = "➕" if row.status == "added" else "➖"
            out.append(f"| {mark} {row.index} ({row.status}) | " + " | ".join(fmt.value(cells[k]) for k, _ in STAGE_COLUMNS) + " |")
        else:
            cells = (
                f"**{fmt.change(row.old[k], row.new[k])}**" if k in row.changed else fmt.value(row.new[k])
                for k, _ in STAGE_COLUMNS
            )
            out.append(f"| {row.index} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _costs(report: DiffReport) -> str:
    out = [f"\n**Parameters and GFLOPs** at {fmt.sizes(report)}\n"]
    out.append("| part | " + " | ".join(fmt.COST_HEADINGS) + " |")
    out.append("|---|" + "---:|" * len(fmt.COST_HEADINGS))
    for row in report.costs:
        cells = " | ".join(fmt.cost_cells(row))
        out.append(f"| **{row.label}** | {cells} |" if row.label == "total" else f"| {row.label} | {cells} |")
    return "\n".join(out) + "\n"


def _details(summary: str, lines: Iterable[str], more: Optional[int]) -> list[str]:
    tail = [f"- … and {more:,} more"] if more else []
    return ["", f"<details><summary>{summary}</summary>", "", *lines, *tail, "", "</details>"]


def _checkpoint(report: DiffReport) -> Section:
    ok = report.checkpoint.strict
    head = [f"\n**Checkpoint**: {'✓' if ok else '✗'} {fmt.checkpoint_summary(report)}."]
    full, folded = list(head), list(head)
    for heading, lines in fmt.checkpoint_lists(report):
        summary = f"{fmt.plural(len(lines), 'tensor')} {heading}"
        shown = [f"- {code(line)}" for line in lines[:LIST_LINES]]
        full += _details(summary, shown, len(lines) - LIST_LINES if len(lines) > LIST_LINES else None)
        folded += _details(summary, shown[: fmt.FIRST_FEW], len(lines) - fmt.FIRST_FEW if len(lines) > fmt.FIRST_FEW else None)
    return Section("\n".join(full) + "\n", "\n".join(folded) + "\n", "checkpoint key lists")
