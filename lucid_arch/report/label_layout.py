"""Where to put a plot's labels so that none covers another label or a point.

Two small, deterministic placements, geometry only (pixel boxes in, positions out), so that
sweep_plot.py measures the texts with matplotlib and this module decides, and tests can check
it without a figure:

- place_labels, for scattered points: each label tries offsets around its point, ring after
  ring outwards, and takes the first whose box stays inside the plot and clear of every point
  and of the labels already placed. Crowded points are placed first, while room is left near them.
- stack_labels, for the ends of curves: one column of labels right of the ends, each as near
  its curve's end as the others allow, so that the labels keep the curves' order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, y upwards

# Ring 0: unit directions from a point to its label, in the order tried: right of it, where a
# label is read first, then the right-hand diagonals, the left, above and below. Further rings
# try positions along the sides of a larger square round the point, those nearest its middle first.
AROUND = ((1, 0), (1, 1), (1, -1), (-1, 0), (-1, 1), (-1, -1), (0, 1), (0, -1))
CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))
SIDES = ((1, 0), (-1, 0), (0, 1), (0, -1))
MAX_RINGS = 24
TOUCH = 1e-6  # square pixels: boxes sharing less than this only touch (rounding)
PER_SIDE = 4  # positions each side of a side's middle, on the rings after the first


@dataclass(frozen=True)
class Placement:
    """A label's offset from its point (pixels), its alignment there, and the box it covers."""

    dx: float
    dy: float
    ha: str  # "left", "center" or "right": which side of the box the offset point is on
    va: str  # "bottom", "center" or "top"
    box: Box
    ring: int  # 0: next to its point; further rings want a leader line back to it
    clear: bool  # False: no free spot was found, this one overlaps least


def _box_at(x: float, y: float, dx: float, dy: float, radius: float, w: float, h: float) -> Placement:
    """The label box touching, from outside, the square of half-size ``radius`` round (x, y) at (x+dx, y+dy)."""
    ha = "left" if dx >= radius else "right" if dx <= -radius else "center"
    va = "bottom" if dy >= radius else "top" if dy <= -radius else "center"
    x0 = x + dx - {"left": 0, "right": w, "center": w / 2}[ha]
    y0 = y + dy - {"bottom": 0, "top": h, "center": h / 2}[va]
    return Placement(dx, dy, ha, va, (x0, y0, x0 + w, y0 + h), 0, True)


def overlap(a: Box, b: Box) -> float:
    """Area two boxes share (0 when they only touch or are apart)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _outside(box: Box, bounds: Box) -> float:
    """Area of ``box`` lying outside ``bounds``."""
    w, h = box[2] - box[0], box[3] - box[1]
    return w * h - overlap(box, bounds)


def _crowding(anchors: list[tuple[float, float]], radius: float) -> list[int]:
    """Indices of the anchors, the most crowded first (neighbours within ``radius``), then in order."""
    near = [sum(math.dist(a, b) < radius for b in anchors) for a in anchors]
    return sorted(range(len(anchors)), key=lambda i: (-near[i], i))


def _offsets(ring: int, radius: float, step: float) -> list[tuple[float, float]]:
    if ring == 0:
        return [(ux * radius, uy * radius) for ux, uy in AROUND]
    along = [0.0] + [sign * k * step for k in range(1, PER_SIDE + 1) for sign in (1, -1) if k * step < radius]
    return [(ux * radius + uy * t, uy * radius + ux * t) for t in along for ux, uy in SIDES] + \
        [(ux * radius, uy * radius) for ux, uy in CORNERS]


def _candidates(x: float, y: float, size: tuple[float, float], gap: float, step: float) -> Iterator[Placement]:
    for ring in range(MAX_RINGS):
        radius = gap + ring * step
        for dx, dy in _offsets(ring, radius, step):
            yield replace(_box_at(x, y, dx, dy, radius, *size), ring=ring)


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], obstacles: list[Box],
                 bounds: Box, gap: float) -> list[Placement]:
    """One placement per anchor (in the anchors' order) for a label of the given (width, height).

    ``obstacles`` are the points' boxes (markers); ``gap`` is the distance from a point to its
    label on the first ring, each further ring one label height out (MAX_RINGS at most). A
    candidate is clear when it lies inside ``bounds`` and shares no area with an obstacle or a
    placed label, each grown by a pixel so that labels never touch. Without a clear one, the
    label takes the candidate overlapping least (``clear=False``).
    """
    placed: dict[int, Placement] = {}
    height = max((h for _, h in sizes), default=0.0)
    for i in _crowding(anchors, 3 * height):
        taken = [*obstacles, *(p.box for p in placed.values())]
        best: tuple[float, Placement] | None = None
        for candidate in _candidates(*anchors[i], sizes[i], gap, height + 2):
            x0, y0, x1, y1 = candidate.box
            grown = (x0 - 1, y0 - 1, x1 + 1, y1 + 1)
            cost = 10 * _outside(candidate.box, bounds)
            if best is not None and cost >= best[0]:
                continue
            cost += sum(overlap(grown, b) for b in taken)
            if cost < TOUCH:
                best = (0.0, candidate)
                break
            if best is None or cost < best[0]:
                best = (cost, replace(candidate, clear=False))
        assert best is not None  # the first ring has candidates
        placed[i] = best[1]
    return [placed[i] for i in range(len(anchors))]


def stack_labels(wanted: list[float], heights: list[float], low: float, high: float, gap: float = 1.0) -> list[float]:
    """Centres (same order as ``wanted``) for labels stacked in one column between ``low`` and ``high``.

    Labels keep the order of their wanted centres and sit ``gap`` apart at least. Labels that
    would overlap are moved together as a block, centred where its labels want to be on
    average (the least total squared displacement); a block is kept within the bounds.
    """
    order = sorted(range(len(wanted)), key=lambda i: (wanted[i], i))
    blocks: list[tuple[list[int], float]] = []  # (labels bottom to top, the block's bottom)

    def settle(members: list[int]) -> float:
        offsets, top = [], 0.0
        for i in members:
            offsets.append(top + heights[i] / 2)
            top += heights[i] + gap
        size = top - gap
        bottom = sum(wanted[i] - o for i, o in zip(members, offsets)) / len(members)
        return max(low, min(bottom, high - size))  # within the bounds; the bottom one wins if it cannot fit

    def top_of(block: tuple[list[int], float]) -> float:
        return block[1] + sum(heights[i] + gap for i in block[0]) - gap

    for i in order:
        blocks.append(([i], settle([i])))
        while len(blocks) > 1 and blocks[-1][1] < top_of(blocks[-2]) + gap:
            members = blocks[-2][0] + blocks[-1][0]
            blocks[-2:] = [(members, settle(members))]
    centres = [0.0] * len(wanted)
    for members, bottom in blocks:
        for i in members:
            centres[i] = bottom + heights[i] / 2
            bottom += heights[i] + gap
    return centres
