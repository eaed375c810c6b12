"""One table, three renderings: rich (a terminal), plain text (a pipe, a log) and markdown (a file).

The app's summary and sweep report and the benchmark tables build a :class:`Table` of already
formatted cells and leave the looks to this module, so every output lines up the same way.
Torch-free; rich is imported only to print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]]
    right: frozenset[int] = frozenset()  # indexes of right-aligned (numeric) columns
    totals: list[Sequence[str]] = field(default_factory=list)  # rows below a rule
    notes: list[tuple[str, str]] = field(default_factory=list)  # "label: text" lines after the table


def cell(value: Any, digits: int = 5) -> str:
    """A metric as a table shows it: floats to ``digits`` significant figures, ints with thousands separators."""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def to_text(table: Table) -> str:
    body = [list(table.columns), *table.rows, *table.totals]
    widths = [max(len(str(row[i])) for row in body) for i in range(len(table.columns))]

    def line(row: Sequence[str]) -> str:
        cells = (str(c).rjust(w) if i in table.right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [table.title] if table.title else []
    out += [line(table.columns), rule, *map(line, table.rows)]
    if table.totals:
        out += [rule, *map(line, table.totals)]
    out += [f"{label}: {text}" for label, text in table.notes]
    return "\n".join(out)


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    align = ["---:" if i in table.right else ":---" for i in range(len(table.columns))]
    rows = [*table.rows, *([[f"**{c}**" if c else "" for c in r] for r in table.totals])]
    out = [f"### {table.title}", "", "| " + " | ".join(map(_md_cell, table.columns)) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
    if table.notes:
        out += ["", *(f"- **{label}**: {_md_cell(text)}" for label, text in table.notes)]
    return "\n".join(out)


def print_rich(table: Table, force_terminal: bool = False) -> None:
    """Cells and notes go to rich as Text, never as markup: ``linear=[true,false]`` prints as typed."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    rich_table = RichTable(title=Text(table.title), title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for i, name in enumerate(table.columns):
        rich_table.add_column(name, justify="right" if i in table.right else "left", no_wrap=True)
    for i, row in enumerate(table.rows):
        rich_table.add_row(*(Text(str(c)) for c in row), end_section=i == len(table.rows) - 1 and bool(table.totals))
    for row in table.totals:
        rich_table.add_row(*(Text(str(c)) for c in row), style="bold")
    console = Console(force_terminal=force_terminal or None, highlight=False)
    # Never truncate a figure to fit a narrow terminal: let the terminal wrap the line instead.
    console.width = max(console.width, len(to_text(table).splitlines()[1]) + 2 * len(table.columns))
    console.print(rich_table)
    for label, text in table.notes:
        console.print(Text.assemble((label, "bold"), ": ", str(text)), soft_wrap=True)


def show(table: Table, fmt: str) -> None:
    """Print for ``format=``: plain text when asked or piped, rich in a terminal (or when asked)."""
    import sys

    if fmt == "text" or (fmt == "auto" and not sys.stdout.isatty()):
        emit(to_text(table))
        return
    try:
        print_rich(table, force_terminal=fmt == "rich")
    except BrokenPipeError:
        emit("")


def emit(text: str) -> None:
    """Print to stdout; a reader that went away (``| head``) is not the job's failure."""
    import os
    import sys

    try:
        sys.stdout.write(text + "\n")  # one write: parallel jobs' lines do not interleave
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's recipe: silence the exit flush
