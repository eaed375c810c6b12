"""sweep.png of a search: the Pareto front, the dominated trials, the pruned and the rejected.

The left panel plots two objectives (the first one to maximise up, the first one to minimise
across; with one direction only, the first two objectives): front trials in colour joined by
their staircase, dominated ones in grey, pruned trainings hollow (at the accuracy they had when
stopped), the baseline ringed, and candidates rejected over budget as crosses along the bottom
at the cost the analysis gave them (they have no accuracy). Candidates rejected as invalid have
no cost to plot: the legend counts them. Front trials and the baseline carry their trial numbers.
A training search adds the learning curves: front trials in colour, pruned ones dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..safe_io import atomic_write
from .sweep_plot import Marker, _label_points, _scale, _title

FRONT_COLOUR, DOMINATED_COLOUR, PRUNED_COLOUR, REJECTED_COLOUR = "tab:blue", "0.6", "0.45", "tab:red"
AREA = 64.0


def axes_of(names: tuple[str, ...], directions: tuple[str, ...]) -> tuple[str, str]:
    """(x, y): the first objective to minimise across, the first to maximise up; else the first two."""
    up = next((n for n, d in zip(names, directions) if d == "maximize"), None)
    across = next((n for n, d in zip(names, directions) if d == "minimize"), None)
    if up and across:
        return across, up
    return (names[1], names[0]) if len(names) > 1 else (names[0], names[0])


def _label(name: str) -> str:
    return {"val_acc": "validation accuracy (%)", "best_val_acc": "best validation accuracy (%)", "gflops": "GFLOPs",
            "params": "parameters (M)", "latency_ms": "latency (ms)"}.get(name, name)


def _value(name: str, value: float) -> float:
    return 100 * value if name in ("val_acc", "best_val_acc") else value / 1e6 if name == "params" else value


def _span(ax: Any, xs: list[float]) -> None:
    """Widen the x limits to hold every value of ``xs``, with a margin (in decades on a log axis)."""
    import math

    lo, hi = min(min(xs), ax.get_xlim()[0]), max(max(xs), ax.get_xlim()[1])
    if ax.get_xscale() == "log":
        pad = 0.05 * (math.log10(hi) - math.log10(lo) or 1)
        ax.set_xlim(lo / 10**pad, hi * 10**pad)
    else:
        pad = 0.05 * ((hi - lo) or abs(hi) or 1)
        ax.set_xlim(lo - pad, hi + pad)


def figure(rows: list[dict[str, Any]], objectives: Any, title: str) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.lines import Line2D

    x_name, y_name = axes_of(objectives.names, objectives.directions)
    has = lambda r: x_name in r["metrics"] and y_name in r["metrics"]  # noqa: E731
    front = sorted((r for r in rows if r.get("place") == "front"), key=lambda r: r["metrics"][x_name])
    dominated = [r for r in rows if r.get("place") == "dominated"]
    pruned = [r for r in rows if r["status"] == "pruned" and has(r)]
    over = [r for r in rows if r["status"] == "rejected" and x_name in r["metrics"]]
    invalid = sum(r["status"] == "rejected" and x_name not in r["metrics"] for r in rows)
    curves = [r for r in rows if r.get("curve")]
    fig = Figure(figsize=(15 if curves else 10, 6), dpi=100, layout=ConstrainedLayoutEngine(w_pad=0.1, h_pad=0.1))
    FigureCanvasAgg(fig)
    ax, curve_ax = fig.subplots(1, 2) if curves else (fig.subplots(), None)
    n_failed = sum(r["status"] in ("failed", "missing") for r in rows)
    _title(fig, f"{title}: {len(rows)} candidates, Pareto front over {objectives.describe()}"
           + (f" ({n_failed} failed or missing, not shown)" if n_failed else ""))

    xy = lambda r: (_value(x_name, r["metrics"][x_name]), _value(y_name, r["metrics"][y_name]))  # noqa: E731
    markers: list[Marker] = []
    handles = []

    def scatter(group: list[dict[str, Any]], label: str, **style: Any) -> None:
        if not group:
            return
        pts = [xy(r) for r in group]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=AREA, zorder=style.pop("zorder", 3), **style)
        markers.extend(Marker(px, py, AREA) for px, py in pts)
        handles.append(Line2D([], [], linestyle="none", marker=style.get("marker", "o"), markersize=7,
                              color=style.get("facecolors", style.get("color")), markeredgecolor=style.get("edgecolors", "white"),
                              label=f"{label} ({len(group)})"))

    scatter(dominated, "dominated", color=DOMINATED_COLOUR, edgecolors="white", marker="o")
    scatter(pruned, "pruned by the pruner", facecolors="none", edgecolors=PRUNED_COLOUR, marker="s", linewidths=1.2)
    if len(objectives.names) == 2 and front:
        pts = [xy(r) for r in front]
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color=FRONT_COLOUR, alpha=0.5, linewidth=1.2, zorder=2)
    scatter(front, "Pareto front", color=FRONT_COLOUR, edgecolors="white", marker="o", zorder=4)
    base = [r for r in rows if r.get("baseline") and r.get("place") in ("front", "dominated")]
    if base:
        bx, by = xy(base[0])
        ax.scatter([bx], [by], s=AREA * 3.2, facecolors="none", edgecolors="black", linewidths=1.4, zorder=5)
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=12, markerfacecolor="none",
                              markeredgecolor="black", label=f"baseline (trial {base[0]['trial']})"))
    if over:
        from matplotlib.transforms import blended_transform_factory

        strip = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter([_value(x_name, r["metrics"][x_name]) for r in over], [0.03] * len(over), s=AREA, marker="x",
                   color=REJECTED_COLOUR, transform=strip, zorder=3, clip_on=False)
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7, color=REJECTED_COLOUR,
                              label=f"rejected over budget ({len(over)}), at their {x_name}"))
    if invalid:
        handles.append(Line2D([], [], linestyle="none", marker="", label=f"rejected as invalid: {invalid} (not drawn)"))
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    xs = [xy(r)[0] for r in [*front, *dominated, *pruned]] + [_value(x_name, r["metrics"][x_name]) for r in over]
    _scale(ax, "x", xs, _label(x_name))
    if over:  # drawn against the axes' height, so they do not widen the limits by themselves
        _span(ax, xs)
    _scale(ax, "y", [], _label(y_name))
    ax.set_title(f"{y_name} against {x_name}")
    if not (front or dominated or pruned):
        ax.text(0.5, 0.5, "no finished trials", ha="center", va="center", transform=ax.transAxes)
    if curve_ax is not None:
        for r in curves:
            epochs, acc = zip(*r["curve"])
            on = r.get("place") == "front"
            curve_ax.plot(epochs, [100 * a for a in acc], color=FRONT_COLOUR if on else DOMINATED_COLOUR,
                          linestyle="--" if r["status"] == "pruned" else "-", linewidth=1.6 if on else 1.0, zorder=3 if on else 2)
        curve_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="learning curves (front in colour, pruned dashed)")
        curve_ax.grid(alpha=0.3)
    (curve_ax or ax).legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=9, frameon=False)

    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    for a in (ax, curve_ax):
        if a is not None:
            a.set(xlim=a.get_xlim(), ylim=a.get_ylim())
    labelled = [*front, *(b for b in base if b.get("place") != "front")]
    _label_points(ax, fig.canvas.get_renderer(), [(*xy(r), f"#{r['trial']}") for r in labelled], markers)
    return fig


def write_pareto_plot(rows: list[dict[str, Any]], objectives: Any, path: Path, title: str) -> None:
    fig = figure(rows, objectives, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
