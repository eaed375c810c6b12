"""The Pareto front: the points no other point beats on every objective at once.

Plain arithmetic over value vectors and their directions, so that the report (and its tests)
need neither Optuna nor torch. Equal points do not dominate each other: both stay on the front.
"""

from __future__ import annotations

from typing import Sequence

MAXIMIZE = "maximize"


def _better_or_equal(a: float, b: float, direction: str) -> bool:
    return a >= b if direction == MAXIMIZE else a <= b


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` on every objective and better on one."""
    if not all(_better_or_equal(x, y, d) for x, y, d in zip(a, b, directions)):
        return False
    return any(x != y for x, y in zip(a, b))


def front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in their given order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)]


def dominated_by(points: Sequence[Sequence[float]], directions: Sequence[str], i: int) -> list[int]:
    """Indices of the points that dominate point ``i``."""
    return [j for j, q in enumerate(points) if j != i and dominates(q, points[i], directions)]
