"""sweep.png reads at a glance: colour and marker by what the sweep varies, a legend for each, log
axes where costs span decades, job labels that never overlap, and a title inside the figure.

Rows are built in memory (the plot reads nothing else); one sweep runs through the app.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from lucid_arch.report.label_layout import overlap, place_labels, stack_labels
from lucid_arch.report.sweep_plot import LABEL_GID, figure, job_span, log_scale, not_shown
from lucid_arch.report.sweep_styles import MARKERS, encode, override_pairs, varied

from conftest import run_main

V2 = ["pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_v2_b2_li", "pvt_v2_b3", "pvt_v2_b4", "pvt_v2_b5"]
SR = ["[8,4,2,1]", "[4,2,1,1]", "[2,2,1,1]"]


def row(job: int, overrides: str, status: str = "ok", curve: list | None = None, **metrics: float) -> dict:
    return {"job": job, "overrides": overrides, "model": "", "status": status, "metrics": metrics, "error": "",
            "dir": "", "curve": curve or []}


def v2_by_sr() -> list[dict]:
    """The 21-job sweep 'model=glob(pvt_v2_*)' 'model.sr_ratios=...' with its real costs' shape:
    b2_li ignores sr_ratios (linear attention), so its three jobs land on one point."""
    rows = []
    for job, (m, (s, sr)) in enumerate(itertools.product(V2, enumerate(SR))):
        size = V2.index(m) + 1
        li = m.endswith("_li")
        rows.append(row(job, f"+experiment=x model={m} model.sr_ratios={sr}", params=3.4e6 * size ** 1.6 * (1 + 0.1 * (not li) * (2 - s)),
                        gflops=1.1 * size ** 1.7 * (1 if li else 1 + 0.2 * s)))
    return rows


def texts(ax) -> list:
    return [t for t in ax.texts if t.get_gid() == LABEL_GID]


def boxes(fig, labels) -> list:
    """The labels' text boxes (an annotation's own extent includes its leader line)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    for t in labels:
        t.update_positions(renderer)
    return [Text.get_window_extent(t, renderer) for t in labels]


def disjoint(bs) -> bool:
    return all(overlap(tuple(a.extents), tuple(b.extents)) == 0 for a, b in itertools.combinations(bs, 2))


def inside(inner, outer) -> bool:
    return outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1


# ------------------------------------------------------------------ what varies: colour, marker, legend


def test_overrides_every_job_shares_vary_nothing():
    rows = v2_by_sr()
    assert override_pairs("+experiment=x model.sr_ratios=[8, 4, 2, 1] ~model.foo=1") == {
        "experiment": "x", "model.sr_ratios": "[8, 4, 2, 1]", "model.foo": "1"}
    assert varied(rows) == {"model": V2, "model.sr_ratios": SR}
    assert varied(rows[:3]) == {"model.sr_ratios": SR}
    assert varied(rows[:1]) == {} and encode(rows[:1]).legend_sections() == []
    assert varied([row(0, "model=a task.seed=1"), row(1, "model=a")]) == {"task.seed": ["1", "(unset)"]}


def test_the_key_with_most_values_is_the_colour_the_others_the_marker():
    rows = v2_by_sr()
    enc = encode(rows)
    assert (enc.colour_by, enc.marker_by) == ("model", ("model.sr_ratios",))
    styles = [enc.style(r) for r in rows]
    assert len({str(c) for c, _ in styles}) == 7 and {m for _, m in styles} == set(MARKERS[:3])
    assert len(set(map(str, styles))) == 21  # every job its own look
    assert [(h, [v for v, *_ in entries]) for h, entries in enc.legend_sections()] == [("model", V2), ("sr_ratios", SR)]
    # Three keys: the two with fewer values share the marker; too many combinations: circles only.
    three = [row(j, f"model.depths={d} model.sr_ratios={s} model.num_heads={h}")
             for j, (d, s, h) in enumerate(itertools.product("abcde", "xy", "pq"))]
    enc3 = encode(three)
    assert (enc3.colour_by, enc3.marker_by) == ("model.depths", ("model.sr_ratios", "model.num_heads"))
    assert list(enc3.markers) == ["sr_ratios=x, num_heads=p", "sr_ratios=x, num_heads=q", "sr_ratios=y, num_heads=p",
                                  "sr_ratios=y, num_heads=q"]
    many = [row(j, f"model={m} model.depths={d} task.seed={s}")
            for j, (m, d, s) in enumerate(itertools.product("abc", "defgh", range(15)))]  # 15 marker combinations
    enc_many = encode(many)
    assert enc_many.colour_by == "task.seed" and enc_many.marker_by == () and {enc_many.style(r)[1] for r in many} == {"o"}


def test_the_figure_legend_names_each_key_and_its_values():
    fig = figure(v2_by_sr(), "Sweep s")
    (ax,) = fig.axes
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["model", *V2, "sr_ratios", *SR]
    assert [t.get_fontweight() for t in legend.get_texts()][::8] == ["bold", "bold"]
    # The legend stands beside the plot, inside the figure, and covers no point.
    assert inside(legend.get_window_extent(fig.canvas.get_renderer()), fig.bbox)
    assert legend.get_window_extent(fig.canvas.get_renderer()).x0 > ax.get_window_extent().x1


# ------------------------------------------------------------------------------------------- axes


def test_cost_axes_are_logarithmic_when_values_span_a_decade():
    assert log_scale([1.0, 10.0]) and not log_scale([1.0, 9.9]) and not log_scale([0.0, 100.0]) and not log_scale([])
    (ax,) = figure(v2_by_sr(), "Sweep s").axes  # 1.1 to 30 GFLOPs, 3.4 to 80 M parameters
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_xlabel() == "GFLOPs (log scale)" and ax.get_ylabel() == "parameters (M) (log scale)"
    ticks = [t.get_text() for t in ax.get_xticklabels() if ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert {"1", "2", "5", "10", "20"} <= set(ticks)  # plain numbers, not 10^1
    narrow = [row(j, f"model=m{j}", params=p, gflops=g) for j, (p, g) in enumerate([(3.4e6, 0.087), (40e6, 0.333)])]
    (ax,) = figure(narrow, "Sweep s").axes  # 4x in GFLOPs: linear; parameters 3.4 to 40 M: log
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "log")


# ----------------------------------------------------------------------------------------- labels


def test_job_labels_never_overlap_each_other_or_the_points():
    rng = random.Random(0)  # 40 jobs crowded into a few pixels' worth of data
    rows = [row(j, f"model=m{j % 5} model.depths=d{j // 5}", params=3e6 + rng.random() * 2e5, gflops=1 + rng.random() * 0.01)
            for j in range(40)]
    rows.append(row(40, "model=m0 model.depths=d9", params=9e6, gflops=1.5))  # one far away
    fig = figure(rows, "Sweep crowded")
    (ax,) = fig.axes
    labels = texts(ax)
    assert sorted(t.get_text() for t in labels) == sorted(f"#{j}" for j in range(41))
    bs = boxes(fig, labels)
    assert disjoint(bs)
    assert all(inside(b, ax.get_window_extent()) for b in bs)
    for r in rows:  # no label covers a point
        x, y = ax.transData.transform((r["metrics"]["gflops"], r["metrics"]["params"] / 1e6))
        assert not any(b.x0 < x < b.x1 and b.y0 < y < b.y1 for b in bs), r["job"]


def test_jobs_on_one_point_share_a_label_and_each_style_shows():
    fig = figure(v2_by_sr(), "Sweep s")
    (ax,) = fig.axes
    assert sorted(t.get_text() for t in texts(ax)) == sorted([f"#{j}" for j in range(21) if j not in (9, 10, 11)] + ["#9-11"])
    assert len(ax.collections) == 21  # b2_li's three markers side by side, not on top of each other
    assert disjoint(boxes(fig, texts(ax)))
    assert job_span([9, 10, 11]) == "#9-11" and job_span([0, 2]) == "#0,2" and job_span([3, 4]) == "#3,4"


def test_place_labels_finds_clear_spots_and_is_deterministic():
    rng = random.Random(1)
    anchors = [(200 + rng.random() * 30, 200 + rng.random() * 30) for _ in range(25)]
    sizes = [(18.0, 10.0)] * 25
    obstacles = [(x - 4, y - 4, x + 4, y + 4) for x, y in anchors]
    bounds = (0.0, 0.0, 400.0, 400.0)
    placed = place_labels(anchors, sizes, obstacles, bounds, gap=6)
    assert all(p.clear for p in placed)
    assert all(overlap(a.box, b.box) == 0 for a, b in itertools.combinations(placed, 2))
    assert all(overlap(p.box, o) == 0 for p in placed for o in obstacles)
    assert placed == place_labels(anchors, sizes, obstacles, bounds, gap=6)
    lone = place_labels([(100.0, 100.0)], [(18.0, 10.0)], [(96, 96, 104, 104)], bounds, gap=6)[0]
    assert (lone.ring, lone.ha, lone.va, lone.dy) == (0, "left", "center", 0)  # right of its point, next to it
    cornered = place_labels([(399.0, 399.0)], [(18.0, 10.0)], [], bounds, gap=6)[0]
    assert (cornered.ha, cornered.va) == ("right", "top") and cornered.clear  # stays inside


def test_stack_labels_keeps_order_and_spacing_within_bounds():
    assert stack_labels([10.0, 50.0], [10.0, 10.0], 0, 100) == [10.0, 50.0]  # room: nobody moves
    centres = stack_labels([50.0, 50.5, 49.5, 51.0], [10.0] * 4, 0, 100)
    order = sorted(range(4), key=lambda i: centres[i])
    assert order == [2, 0, 1, 3]  # the ends' order
    assert all(b - a >= 11 - 1e-9 for a, b in zip(sorted(centres), sorted(centres)[1:]))
    assert abs(sum(centres) / 4 - 50.25) < 1e-9  # centred on where they want to be
    assert min(stack_labels([1.0, 2.0], [10.0, 10.0], 0, 100)) >= 5  # pushed up off the bottom
    assert max(stack_labels([99.0, 98.0], [10.0, 10.0], 0, 100)) <= 95


# -------------------------------------------------------------------------------- title and failures


def test_the_title_fits_and_counts_the_jobs_not_shown():
    rows = v2_by_sr()
    rows[1]["status"], rows[1]["metrics"] = "failed", {}
    rows[3]["status"], rows[3]["metrics"] = "failed", {}
    rows[5]["status"], rows[5]["metrics"] = "missing", {}
    assert not_shown(rows) == "2 failed, 1 missing, not shown: #1, #3, #5"
    assert not_shown(v2_by_sr()) == ""
    fig = figure(rows, "Sweep " + "a-long-sweep-directory-name-" * 4)
    title = fig._suptitle
    assert title.get_text().endswith("21 jobs (2 failed, 1 missing, not shown: #1, #3, #5)")
    assert inside(title.get_window_extent(fig.canvas.get_renderer()), fig.bbox)  # wrapped, not cut
    (ax,) = fig.axes
    assert len(ax.collections) == 18 and "#1" not in [t.get_text() for t in texts(ax)]
    nothing = figure([row(0, "model=a", "failed")], "Sweep s")
    assert nothing._suptitle.get_text() == "Sweep s: 1 jobs (1 failed, not shown: #0)"
    assert "no successful jobs" in [t.get_text() for t in nothing.axes[0].texts]


def test_a_training_sweep_keeps_accuracy_against_gflops_beside_the_curves():
    rows = [row(j, f"model={m} task.seed={s}", curve=[(e, (0.7 + 0.05 * (m == "b1")) * e / 10 + 0.001 * s) for e in range(1, 11)],
                params=3e6 * (1 + 3 * (m == "b1")), gflops=0.09 * (1 + 3 * (m == "b1")), val_acc=0.7 + 0.05 * (m == "b1") + 0.001 * s)
            for j, (m, s) in enumerate(itertools.product(["b0", "b1"], range(3)))]
    fig = figure(rows, "Sweep t")
    acc, curves = fig.axes
    assert acc.get_title() == "validation accuracy vs GFLOPs" and curves.get_title() == "learning curves"
    assert acc.get_ylabel() == "validation accuracy (%)" and acc.get_yscale() == "linear"
    assert curves.get_legend() is not None and acc.get_legend() is None
    assert [t.get_text() for t in curves.get_legend().get_texts()] == ["task.seed", "0", "1", "2", "model", "b0", "b1"]
    assert [line.get_color() for line in curves.lines][:3] != [curves.lines[0].get_color()] * 3  # seeds apart
    ends = texts(curves)
    assert len(ends) == 6 and disjoint(boxes(fig, ends)) and disjoint(boxes(fig, texts(acc)))
    # The end labels keep the curves' order, top to bottom: b1's three above b0's three.
    by_height = [t.get_text() for t in sorted(ends, key=lambda t: -t.get_window_extent().y0)]
    assert by_height == ["#5", "#4", "#3", "#2", "#1", "#0"]


# ------------------------------------------------------------------------------------ through the app


def test_a_sweep_through_the_app_leaves_a_readable_png(tmp_path, monkeypatch, capsys):
    import matplotlib.image

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code, _, err = run_main(["-m", "model=pvt_v2_b0,pvt_v2_b1", "model.sr_ratios=[8,4,2,1],[4,2,1,1]", "hydra.sweep.dir=s"], capsys)
    assert code == 0, err
    image = matplotlib.image.imread(Path("s/sweep.png"))
    assert image.shape[:2] == (550, 1000)
    rgb = (image[..., :3] * 255).round().astype(int)
    edges = [rgb[:4], rgb[-4:], rgb[:, :4], rgb[:, -4:]]
    assert all((e == 255).all() for e in edges)  # nothing cut at any edge, the title included

    def has(colour: tuple[int, int, int]) -> bool:
        return bool((abs(rgb - colour).sum(axis=-1) < 6).any())

    # Coloured by model (tab10's first two), not one colour for every point; no third colour.
    assert has((31, 119, 180)) and has((255, 127, 14)) and not has((44, 160, 44))
