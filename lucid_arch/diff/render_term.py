"""Terminal rendering with rich: colour on a tty, the same tables as plain text when piped.

Values from configs reach rich only as :class:`rich.text.Text` (never parsed as markup, so
``[true, false]`` or ``[link=...]`` print as written) and after :func:`fmt.value` /
:func:`~lucid_arch.config.model_files.quote` have escaped control characters.
"""

from __future__ import annotations

import io
import sys
from typing import IO, Optional

from . import fmt
from .compare import STAGE_COLUMNS, DiffReport, SideSummary

PIPED_WIDTH = 200  # rich would wrap tables at 80 columns in a pipe or a CI log


def render(report: DiffReport, file: Optional[IO[str]] = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, highlight=False, soft_wrap=False)
    piped = not console.is_terminal
    if piped:  # plain text, recorded so that rich's padding can be trimmed from line ends
        console = Console(file=io.StringIO(), highlight=False, width=PIPED_WIDTH, no_color=True)

    from rich.markup import escape
    from rich.text import Text

    def table(*headings: str, title: str) -> Table:
        t = Table(*headings, title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        return t

    console.print(f"[bold]lucid-arch-diff[/]  {escape(fmt.side_title(report.old))}  {fmt.ARROW}  {escape(fmt.side_title(report.new))}")
    for side in report.sides:
        _side(console, side)
    console.print()

    if report.comparable:
        if report.fields:
            t = table("key", "OLD", "NEW", "set in (OLD → NEW)", title=f"Changed fields ({len(report.fields)})")
            for f in report.fields:
                style = "yellow" if f.architectural else "dim"
                t.add_row(
                    *(Text(c) for c in (fmt.value(f.key), fmt.value(f.old), fmt.value(f.new), fmt.sources(f.old_source, f.new_source))),
                    style=style,
                )
            console.print(t)
        else:
            console.print("[bold]Changed fields[/]: none\n")

        t = table("stage", *(h for _, h in STAGE_COLUMNS), title=f"Stages at {fmt.sizes(report)}")
        for row in report.stages:
            if row.status in ("added", "removed"):
                cells = row.new if row.status == "added" else row.old
                colour = "green" if row.status == "added" else "red"
                mark = "+" if row.status == "added" else "-"
                t.add_row(
                    f"{mark}{row.index} ({row.status})", *(Text(fmt.value(cells[k])) for k, _ in STAGE_COLUMNS), style=colour
                )
            else:
                t.add_row(
                    str(row.index),
                    *(
                        Text(fmt.change(row.old[k], row.new[k]), style="yellow")
                        if k in row.changed
                        else Text(fmt.value(row.new[k]))
                        for k, _ in STAGE_COLUMNS
                    ),
                )
        console.print(t)

        t = table("part", *fmt.COST_HEADINGS, title=f"Parameters and GFLOPs at {fmt.sizes(report)}")
        for row in report.costs:
            t.add_row(row.label, *fmt.cost_cells(row), style="bold" if row.label == "total" else None)
        console.print(t)

        ok = report.checkpoint.strict
        console.print(
            f"[bold]Checkpoint[/]: [{'green' if ok else 'red'}]{'✓' if ok else '✗'}[/] {fmt.checkpoint_summary(report)}"
        )
        for heading, lines in fmt.checkpoint_lists(report):
            more = f" (first {fmt.FIRST_FEW} of {len(lines)})" if len(lines) > fmt.FIRST_FEW else ""
            console.print(f"  {heading}{more}:")
            for line in lines[: fmt.FIRST_FEW]:
                console.print(f"    {line}", markup=False)
        console.print()

    colour = {0: "green", 1: "yellow", 2: "red"}[report.exit_code]
    console.print(f"[bold {colour}]{fmt.verdict(report)}[/]")
    if piped:
        text = "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())
        print(text, file=file or sys.stdout)


def _side(console, side: SideSummary) -> None:
    from rich.markup import escape

    from ..config.model_files import quote

    mark = "[green]✓ valid[/]" if side.valid else "[red]✗ invalid[/]"
    console.print(f"  {side.role.upper():3}  {escape(fmt.side_title(side))}  ({side.kind}) {mark}")
    if side.chain:
        console.print(f"       [dim]{escape(f' {fmt.ARROW} '.join(quote(c) for c in side.chain))}[/]")
    for p in side.problems:
        where = f" [dim](set in {escape(quote(p['source']))})[/]" if p["source"] else ""
        console.print(f"       [red]-[/] {escape(quote(p['message'], 500))}{where}")
