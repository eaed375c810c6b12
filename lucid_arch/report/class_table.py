"""Per-class figures with the classes' names: the table a person reads and the CSV a script reads.

An mIoU alone hides which classes a model gets wrong; mmsegmentation's test.py therefore prints
a row per class (its name, IoU, Acc). :class:`ClassFigures` holds such rows for any task (eval's
IoU and accuracy with pixel counts, a training run's last validation IoU, a classifier's
per-class accuracy); :func:`class_table` renders them through report/tables.py, so they print
like every other table of the app, and :func:`write_class_csv` writes them whole or not at all.
A figure that is undefined (a class never labelled has no accuracy) is ``None``: printed
``nan`` as mmsegmentation prints it, written as an empty CSV cell, never as 0.
Torch-free.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .tables import Table

UNDEFINED = "nan"  # mmsegmentation's word for a class with no pixels to score


@dataclass(frozen=True)
class ClassFigures:
    """Rows of per-class figures: ``scores`` are fractions (shown as percentages), ``counts`` integers."""

    names: Sequence[str]
    scores: dict[str, Sequence[Optional[float]]]  # column -> one value per class, e.g. {"IoU": [...], "Acc": [...]}
    counts: dict[str, Sequence[int]] = field(default_factory=dict)  # column -> one count per class, e.g. {"pixels": [...]}

    def __post_init__(self) -> None:
        for column, values in (*self.scores.items(), *self.counts.items()):
            if len(values) != len(self.names):
                raise ValueError(f"class figures: column {column!r} has {len(values)} values for {len(self.names)} classes.")

    def to_dict(self) -> dict[str, dict[str, Optional[float]]]:
        """{class name: {column: value}}, as summary.json keeps it (an undefined figure is null)."""
        columns = {**self.scores, **self.counts}
        return {name: {c: values[i] for c, values in columns.items()} for i, name in enumerate(self.names)}


def _percent(value: Optional[float]) -> str:
    return UNDEFINED if value is None else f"{100 * value:.2f}"


def class_table(figures: ClassFigures, title: str, notes: Sequence[tuple[str, str]] = ()) -> Table:
    """The rows as a :class:`Table`: id, class name, each score in % with two decimals (mmseg's), each count."""
    columns = ["id", "class", *(f"{c} (%)" for c in figures.scores), *figures.counts]
    rows = [[str(i), name, *(_percent(v[i]) for v in figures.scores.values()), *(f"{v[i]:,}" for v in figures.counts.values())]
            for i, name in enumerate(figures.names)]
    right = frozenset({0, *range(2, len(columns))})
    return Table(title=title, columns=columns, rows=rows, right=right, notes=list(notes))


def write_class_csv(figures: ClassFigures, path: Path) -> Path:
    """``path``: one row per class (id, class, scores as fractions, counts), written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "class", *figures.scores, *figures.counts])
    for i, name in enumerate(figures.names):
        writer.writerow([i, name, *("" if v[i] is None else f"{v[i]:.6f}" for v in figures.scores.values()),
                         *(int(v[i]) for v in figures.counts.values())])
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path
