"""sweep.png: a sweep's jobs as points, styled by what the sweep varies, readable at a glance.

Parameters against GFLOPs; a training sweep plots validation accuracy (segmentation models:
mIoU) against GFLOPs, beside each job's learning curve. Colour and marker follow what the jobs' overrides vary
(sweep_styles.py), with a legend for each. A cost axis whose values span a decade or more is
logarithmic. Points carry their job numbers, placed clear of each other (label_layout.py).
Failed and missing jobs are not drawn; the title counts and names them.

matplotlib is imported only when a plot is drawn (the app's start stays fast), and only its Agg
canvas is used: files, no display, so it works on a cluster node.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..safe_io import atomic_write
from .label_layout import place_labels, stack_labels
from .sweep_styles import Encoding, encode

LOG_SPAN = 10.0  # a cost axis whose largest value is this many times its smallest is logarithmic
MAX_LEGEND_VALUES = 20  # per legend section; further values are counted, not listed
MAX_NAMED = 12  # jobs not shown that the title names
POINT_AREA = 64.0  # scatter marker area, points^2
LABEL_SIZE = 8
LABEL_GID = "job-label"  # the gid of every job label, for tests to find them
# A training sweep's score, the first of these every finished job has: (metric, axis label).
SCORES = (("val_acc", "validation accuracy (%)"), ("val_miou", "validation mIoU (%)"), ("mIoU", "mIoU (%)"),
          ("top1", "top-1 accuracy (%)"), ("val_box_ap", "validation box AP (%)"), ("box_AP", "box AP (%)"))


@dataclass(frozen=True)
class Marker:
    """A marker drawn at data (x, y): its area (points^2) and its shift right of the point (points)."""

    x: float
    y: float
    area: float
    shift: float = 0.0


def plotted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the plot draws: finished jobs with a cost."""
    return [r for r in rows if r["status"] == "ok" and {"params", "gflops"} <= r["metrics"].keys()]


def log_scale(values: list[float]) -> bool:
    """Whether values span a decade or more (all positive): then a log axis shows them all."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= LOG_SPAN


def job_span(jobs: list[Any]) -> str:
    """``#9-11`` for three or more consecutive job numbers, ``#0,2`` otherwise."""
    nums = [j for j in jobs if isinstance(j, int)]
    if len(nums) == len(jobs) > 2 and nums == list(range(nums[0], nums[0] + len(nums))):
        return f"#{nums[0]}-{nums[-1]}"
    return "#" + ",".join(str(j) for j in jobs)


def not_shown(rows: list[dict[str, Any]]) -> str:
    """``2 failed, 1 missing, not shown: #1, #3, #5``; "" when every job is drawn."""
    drawn = {id(r) for r in plotted(rows)}
    rest = [r for r in rows if id(r) not in drawn]
    if not rest:
        return ""
    missing = sum(r["status"] == "missing" for r in rest)
    counts = [f"{len(rest) - missing} failed"] if len(rest) > missing else []
    counts += [f"{missing} missing"] if missing else []
    named = ", ".join(f"#{r['job']}" for r in rest[:MAX_NAMED]) + (", …" if len(rest) > MAX_NAMED else "")
    return f"{', '.join(counts)}, not shown: {named}"


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _scale(ax: Any, which: str, values: list[float], label: str) -> None:
    """Label an axis; make it logarithmic, ticked 1, 2, 5, 10, 20 (plain numbers), when ``values`` span a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = getattr(ax, f"{which}axis")
    if log_scale(values):
        getattr(ax, f"set_{which}scale")("log")
        decades = math.log10(max(values) / min(values))
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
        axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
        label += " (log scale)"
    axis.set_label_text(label)


def _legend(ax: Any, enc: Encoding) -> None:
    """One legend right of ``ax`` (the last plot), under the title: a bold heading per key, then its values."""
    from matplotlib.lines import Line2D

    handles, labels, headings = [], [], []
    for heading, entries in enc.legend_sections():
        headings.append(len(labels))
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(heading)
        for value, colour, marker in entries[:MAX_LEGEND_VALUES]:
            handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=7, color=colour,
                                  markeredgecolor="white"))
            labels.append(_clip(value))
        if len(entries) > MAX_LEGEND_VALUES:
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(f"… {len(entries) - MAX_LEGEND_VALUES} more (sweep.md)")
    if handles:
        legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=9,
                           frameon=False, handletextpad=0.4)
        for i in headings:
            legend.get_texts()[i].set_fontweight("bold")


def _legend_lines(enc: Encoding) -> int:
    return sum(1 + min(len(entries), MAX_LEGEND_VALUES + 1) for _, entries in enc.legend_sections())


def _scatter(ax: Any, points: dict[tuple[float, float], list[dict[str, Any]]], enc: Encoding) -> list[Marker]:
    """Draw each point. Jobs landing on the same point in different styles (``linear=true`` ignores
    ``sr_ratios``) are drawn side by side, a marker's width apart, so that every style shows.

    Returns every marker drawn, for the labels to avoid.
    """
    from matplotlib.transforms import ScaledTranslation

    drawn = []
    diameter = math.sqrt(POINT_AREA) + 1  # points
    for (x, y), group in points.items():
        styles = list(dict.fromkeys(enc.style(r) for r in group))
        for i, (colour, marker) in enumerate(styles):
            shift = (i - (len(styles) - 1) / 2) * diameter
            at = ax.transData + ScaledTranslation(shift / 72, 0, ax.figure.dpi_scale_trans)
            ax.scatter([x], [y], s=POINT_AREA, color=colour, marker=marker, edgecolors="white", linewidths=0.6,
                       zorder=3, transform=at)
            drawn.append(Marker(x, y, POINT_AREA, shift))
        ax.update_datalim([(x, y)])  # a marker drawn with a shift does not count towards the limits
    ax.autoscale_view()
    return drawn


def score_of(done: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(metric, axis label) a training sweep plots, or None: not every job trained, or they report
    different scores (a classifier's accuracy and a segmenter's mIoU share no axis)."""
    return next(((key, label) for key, label in SCORES if done and all(key in r["metrics"] for r in done)), None)


def _curves(ax: Any, done: list[dict[str, Any]], enc: Encoding, label: str) -> list[tuple[float, float, str]]:
    """Each job's validation score per epoch; returns each curve's end and its job label."""
    ends = []
    for r in done:
        if r["curve"]:
            epochs, acc = zip(*r["curve"])
            colour, marker = enc.style(r)
            ax.plot(epochs, [100 * a for a in acc], color=colour, marker=marker, markersize=4, linewidth=1.5)
            ends.append((float(epochs[-1]), 100 * acc[-1], f"#{r['job']}"))
    ax.set(xlabel="epoch", ylabel=label, title="learning curves")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.08)  # room for the labels right of the ends
    return ends


def _measure(ax: Any, renderer: Any, texts: list[str]) -> list[tuple[float, float]]:
    """(width, height) in pixels of each label text."""
    sizes = []
    for text in texts:
        probe = ax.text(0, 0, text, fontsize=LABEL_SIZE)
        box = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((box.width, box.height))
    return sizes


def _annotate(ax: Any, text: str, xy: tuple[float, float], offset: tuple[float, float], align: tuple[str, str],
              leader: float | None) -> Any:
    """A job label ``offset`` pixels from its point; if moved away, a thin line back to it, ``leader`` pixels short."""
    px = ax.figure.dpi / 72
    line = {} if leader is None else {
        "arrowprops": {"arrowstyle": "-", "color": "0.55", "linewidth": 0.6, "shrinkA": 1, "shrinkB": leader / px}}
    return ax.annotate(text, xy, xytext=(offset[0] / px, offset[1] / px), textcoords="offset points", ha=align[0],
                       va=align[1], fontsize=LABEL_SIZE, gid=LABEL_GID, zorder=5, **line)


def _label_points(ax: Any, renderer: Any, items: list[tuple[float, float, str]], markers: list[Marker]) -> None:
    """Job labels at scattered points, clear of each other and of every marker."""
    px = ax.figure.dpi / 72
    anchors = [tuple(ax.transData.transform((x, y))) for x, y, _ in items]
    obstacles = []
    for m in markers:
        cx, cy = ax.transData.transform((m.x, m.y))
        cx, r = cx + m.shift * px, math.sqrt(m.area) / 2 * px + 1
        obstacles.append((cx - r, cy - r, cx + r, cy + r))
    radius = max((math.sqrt(m.area) / 2 * px for m in markers), default=4.0)
    bounds = tuple(ax.get_window_extent(renderer).extents)
    sizes = _measure(ax, renderer, [text for *_, text in items])
    for (x, y, text), p in zip(items, place_labels(anchors, sizes, obstacles, bounds, gap=radius + 2)):
        _annotate(ax, text, (x, y), (p.dx, p.dy), (p.ha, p.va), radius if p.ring else None)


def _label_ends(ax: Any, renderer: Any, ends: list[tuple[float, float, str]]) -> None:
    """Job labels in a column right of the curves' ends, in the ends' order."""
    if not ends:
        return
    anchors = [ax.transData.transform((x, y)) for x, y, _ in ends]
    heights = [h for _, h in _measure(ax, renderer, [text for *_, text in ends])]
    column = max(a[0] for a in anchors) + 6
    bounds = ax.get_window_extent(renderer)
    centres = stack_labels([a[1] for a in anchors], heights, bounds.y0 + 2, bounds.y1 - 2)
    for (x, y, text), (ax_px, ay_px), c in zip(ends, anchors, centres):
        moved = abs(c - ay_px) > 2 or column - ax_px > 6
        _annotate(ax, text, (x, y), (column - ax_px, c - ay_px), ("left", "center"), 3.0 if moved else None)


def _title(fig: Any, text: str) -> None:
    """The figure's title, broken into lines (at spaces, hyphens or anywhere) where it is wider than the figure."""
    title = fig.suptitle(text)
    width = title.get_window_extent(fig.canvas.get_renderer()).width
    room = fig.bbox.width - 0.5 * fig.dpi
    if width > room:
        title.set_text(textwrap.fill(text, max(20, int(len(text) * room / width))))


def figure(rows: list[dict[str, Any]], title: str) -> Any:
    """The sweep's figure (a matplotlib Figure on an Agg canvas), laid out and labelled, not yet saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    done = plotted(rows)
    score = score_of(done)
    trained = score is not None
    enc = encode(done)
    fig = Figure(figsize=(15 if trained else 10, max(5.5, 1.6 + 0.21 * _legend_lines(enc))), dpi=100,
                 layout=ConstrainedLayoutEngine(w_pad=0.1, h_pad=0.1))  # the title and legend inside the figure
    FigureCanvasAgg(fig)
    ax, curves = fig.subplots(1, 2) if trained else (fig.subplots(), None)
    note = not_shown(rows)
    _title(fig, f"{title}: {len(rows)} jobs" + (f" ({note})" if note else ""))

    points: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for r in done:
        y = 100 * r["metrics"][score[0]] if trained else r["metrics"]["params"] / 1e6
        points.setdefault((r["metrics"]["gflops"], y), []).append(r)
    markers = _scatter(ax, points, enc)
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    _scale(ax, "x", [x for x, _ in points], "GFLOPs")
    if trained:  # accuracy and mIoU stay linear
        _scale(ax, "y", [], score[1])
    else:
        _scale(ax, "y", [y for _, y in points], "parameters (M)")
    if trained:  # two panels: each says what it shows
        ax.set_title(f"{score[1].removesuffix(' (%)')} vs GFLOPs")
    if not done:
        ax.text(0.5, 0.5, "no successful jobs", ha="center", va="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[])
    ends = _curves(curves, done, enc, score[1]) if curves is not None else []
    _legend(curves if curves is not None else ax, enc)

    # Fix the layout and the limits, then place the labels in the pixels they will have.
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    for a in (ax, curves):
        if a is not None:
            a.set(xlim=a.get_xlim(), ylim=a.get_ylim())
    renderer = fig.canvas.get_renderer()
    _label_points(ax, renderer, [(x, y, job_span([r["job"] for r in group])) for (x, y), group in points.items()],
                  markers)
    if curves is not None:
        _label_ends(curves, renderer, ends)
    return fig


def write_plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """sweep.png: the sweep's figure, written to ``path`` whole or not at all."""
    fig = figure(rows, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
