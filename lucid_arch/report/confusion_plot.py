"""confusion.png: which classes a model takes for which, as a picture with the class names on its axes.

The matrix is row-normalised (each row, a true class, sums to 100%): a rare class's errors are
as visible as a common one's, and the diagonal reads as each class's accuracy. The figure grows
with the class count up to a bound, and the names are thinned so that they never overlap: every
name up to :data:`ALL_NAMES` classes, then every k-th (ADE20K's 150 classes get about 50 names per
axis, each with its id so the gaps can be counted). Cells carry their percentage only while
they are large enough to hold it. A row whose class was never labelled is drawn grey: it has no
errors to show, and a white row of zeros would claim a class never predicted right.

Only matplotlib's Agg canvas is used (no display), and the PNG is written whole or not at all.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

ALL_NAMES = 40  # classes up to which every name is written on each axis
MAX_TICKS = 50  # names per axis beyond that (thinned evenly)
CELL_TEXT = 12  # classes up to which every cell carries its percentage
NAME_CHARS = 18  # a longer class name is cut, with an ellipsis


def normalised_rows(counts: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each row divided by its sum (NaN for a row of zeros: a class never labelled)."""
    out = []
    for row in counts:
        total = float(sum(row))
        out.append([float(v) / total if total else math.nan for v in row])
    return out


def shown_ticks(num_classes: int) -> list[int]:
    """The class ids whose names an axis shows: all of them, or an even thinning to about MAX_TICKS."""
    if num_classes <= ALL_NAMES:
        return list(range(num_classes))
    step = math.ceil(num_classes / MAX_TICKS)
    return list(range(0, num_classes, step))


def _label(i: int, name: str, numbered: bool) -> str:
    name = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
    return f"{i} {name}" if numbered else name


def confusion_figure(counts: Sequence[Sequence[float]], names: Sequence[str], title: str, unit: str = "pixels") -> Any:
    """The figure (a matplotlib Figure on an Agg canvas) of ``counts`` (rows: label, columns: prediction)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    if len(counts) != k or any(len(row) != k for row in counts):
        raise ValueError(f"confusion_figure: a {k} x {k} matrix is needed for {k} class names.")
    matrix = np.array(normalised_rows(counts), dtype=float)
    ticks = shown_ticks(k)
    numbered = len(ticks) < k  # thinned: the ids say where the unnamed rows lie
    labels = [_label(i, names[i], numbered) for i in ticks]
    longest = max((len(s) for s in labels), default=1)
    font = 9 if k <= 20 else 7 if k <= ALL_NAMES else 6
    side = min(22.0, max(5.0, 0.22 * k + 2.0))  # the matrix's side in inches
    margin = 0.8 + longest * font / 72 * 0.62  # room for the names, in inches
    fig = Figure(figsize=(side + margin + 1.4, side + margin + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((margin / (side + margin + 1.4), margin / (side + margin + 0.8), side / (side + margin + 1.4),
                       side / (side + margin + 0.8)))
    shown = np.ma.masked_invalid(matrix)
    cmap = colormaps["Blues"].with_extremes(bad="#d9d9d9")  # grey: a class never labelled
    image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    ax.set_xticks(ticks, labels, rotation=90, fontsize=font)
    ax.set_yticks(ticks, labels, fontsize=font)
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("true class (label)", fontsize=10)
    ax.set_title(title, fontsize=11, loc="left")
    if k <= CELL_TEXT:
        for (row, col), value in np.ndenumerate(matrix):
            if not math.isnan(value):
                ax.text(col, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if value > 0.6 else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(f"share of the true class's {unit} (%)", fontsize=9)
    bar.set_ticks([0, 0.25, 0.5, 0.75, 1.0], labels=["0", "25", "50", "75", "100"])
    return fig


def write_confusion_png(counts: Sequence[Sequence[float]], names: Sequence[str], path: Path, title: str, unit: str = "pixels") -> Path:
    """``path``: the confusion figure as a PNG, written under a temporary name and renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    confusion_figure(counts, names, title, unit).savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
