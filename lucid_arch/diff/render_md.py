"""Markdown for a GitHub PR comment: tables, ✓/✗ marks, long lists folded into <details>."""

from __future__ import annotations

from . import fmt
from .compare import STAGE_COLUMNS, DiffReport, SideSummary


def render(report: DiffReport) -> str:
    out = [
        f"### `lucid-arch-diff` {_code(fmt.side_title(report.old))} {fmt.ARROW} {_code(fmt.side_title(report.new))}",
        "",
    ]
    out += ["| side | spec | status | name | defaults chain |", "|---|---|---|---|---|"]
    out += [_side_row(s) for s in (report.old, report.new)]
    out.append("")
    for side in (report.old, report.new):
        if side.problems:
            out.append(f"**{side.role.upper()} is invalid** ({fmt.plural(len(side.problems), 'problem')}):")
            out += [
                f"- {_cell(p['message'])}" + (f" (set in `{p['source']}`)" if p["source"] else "")
                for p in side.problems
            ]
            out.append("")

    if report.comparable:
        if report.fields:
            out += [
                f"**Changed fields** ({len(report.fields)})",
                "",
                "| key | OLD | NEW | set in (OLD → NEW) |",
                "|---|---|---|---|",
            ]
            for f in report.fields:
                where = _cell(fmt.sources(f.old_source, f.new_source))
                out.append(f"| `{f.key}` | {_code(fmt.value(f.old))} | {_code(fmt.value(f.new))} | {where} |")
        else:
            out.append("**Changed fields**: none")
        out += ["", f"**Stages** at {fmt.sizes(report)} (changed cells in bold)", ""]
        out.append("| stage | " + " | ".join(h for _, h in STAGE_COLUMNS) + " |")
        out.append("|---" * (len(STAGE_COLUMNS) + 1) + "|")
        for row in report.stages:
            if row.status in ("added", "removed"):
                cells = row.new if row.status == "added" else row.old
                mark = "➕" if row.status == "added" else "➖"
                out.append(
                    f"| {mark} {row.index} ({row.status}) | "
                    + " | ".join(fmt.value(cells[k]) for k, _ in STAGE_COLUMNS)
                    + " |"
                )
            else:
                out.append(
                    f"| {row.index} | "
                    + " | ".join(
                        f"**{fmt.change(row.old[k], row.new[k])}**" if k in row.changed else fmt.value(row.new[k])
                        for k, _ in STAGE_COLUMNS
                    )
                    + " |"
                )
        out += ["", f"**Parameters and GFLOPs** at {fmt.sizes(report)}", ""]
        out.append("| part | " + " | ".join(fmt.COST_HEADINGS) + " |")
        out.append("|---|" + "---:|" * len(fmt.COST_HEADINGS))
        for row in report.costs:
            cells = " | ".join(fmt.cost_cells(row))
            out.append(f"| **{row.label}** | {cells} |" if row.label == "total" else f"| {row.label} | {cells} |")
        ok = report.checkpoint.strict
        out += ["", f"**Checkpoint**: {'✓' if ok else '✗'} {fmt.checkpoint_summary(report)}."]
        for heading, lines in fmt.checkpoint_lists(report):
            out += [
                "",
                f"<details><summary>{fmt.plural(len(lines), 'tensor')} {heading}</summary>",
                "",
            ]
            out += [f"- `{line}`" for line in lines]
            out += ["", "</details>"]
    out += ["", f"**Result**: {fmt.verdict(report)}", ""]
    return "\n".join(out)


def _side_row(side: SideSummary) -> str:
    status = "✓ valid" if side.valid else "✗ invalid"
    chain = f" {fmt.ARROW} ".join(f"`{c}`" for c in side.chain) or "–"
    name = _code(side.name) if side.name else "–"
    return f"| {side.role.upper()} | {_code(fmt.side_title(side))} | {status} | {name} | {chain} |"


def _cell(text: str) -> str:
    """Text safe inside a table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"
