"""Pareto fronts of (top-1, MACs) points: maximize top-1, minimize MACs. Pure functions, no I/O.

Conventions (the report, its tables and its plot all use these):

- Dominance is weak Pareto dominance: ``a`` dominates ``b`` when ``a`` is at least as accurate
  *and* at most as expensive, and strictly better in at least one of the two. A point is on the
  front when no other point dominates it.
- Ties in one objective: of two points with the same top-1, only the cheaper one is on the front;
  of two points with the same MACs, only the more accurate one.
- Duplicates (exactly equal top-1 and MACs, e.g. two configurations that ended identically) do not
  dominate each other, so all copies are on the front; the front's *line* passes through their
  common coordinates once (:func:`front_line`).
- Points with a NaN or infinite coordinate (failed or unmeasured runs) are never on the front and
  never dominate anything.
- Fronts are returned in order of increasing MACs (then input order), so top-1 increases too.

:func:`hypervolume` measures a front as one number (the area it dominates); it works in its own
plane, (x, y) both maximised, e.g. (log2 of the MAC speed-up, top-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]  # (top1, macs)


def _finite(p: Point) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` = (top1, macs) weakly Pareto-dominates ``b``: no worse in both, better in one."""
    if not (_finite(a) and _finite(b)):
        return False
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def front_indices(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, by increasing MACs (ties: input order).

    O(n log n): sweep by increasing MACs (decreasing top-1 within equal MACs) and keep a point when
    it beats the best top-1 seen so far, or exactly duplicates the point that set it.
    """
    order = sorted((i for i, p in enumerate(points) if _finite(p)), key=lambda i: (points[i][1], -points[i][0], i))
    front: list[int] = []
    best: Point | None = None
    for i in order:
        p = (float(points[i][0]), float(points[i][1]))
        if best is None or p[0] > best[0]:
            front.append(i)
            best = p
        elif p == best:  # an exact duplicate of the last front point: dominated by nothing
            front.append(i)
    return front


def front_line(points: Sequence[Point], shown: Sequence[Point] | None = None) -> tuple[list[float], list[float]]:
    """(macs, top1) coordinates of the front as a line to plot: by increasing MACs, duplicates once.
    The front is computed on ``points``; ``shown`` (parallel to it, default ``points``) gives the
    coordinates drawn, e.g. a front selected on validation top-1 drawn at its members' test top-1."""
    shown = points if shown is None else shown
    xs: list[float] = []
    ys: list[float] = []
    for i in front_indices(points):
        top1, macs = float(shown[i][0]), float(shown[i][1])
        if not xs or (macs, top1) != (xs[-1], ys[-1]):
            xs.append(macs)
            ys.append(top1)
    return xs, ys


def fronts_by(points: Sequence[Point], keys: Sequence) -> dict:
    """One front per distinct key (e.g. per method): ``{key: [indices into points]}``."""
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out = {}
    for k, idx in groups.items():
        out[k] = [idx[j] for j in front_indices([points[i] for i in idx])]
    return out


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area of the plane that ``points`` (x, y), both maximised, dominate above ``ref`` = (x0, y0):

        HV = area( union over p of [x0, p.x] x [y0, p.y] ),  for p with p.x > x0 and p.y > y0

    Points left of x0, below y0 or not finite contribute nothing; dominated points and duplicates
    change nothing (their rectangles lie inside another's). A single point gives (x - x0) * (y - y0).
    Sweep by decreasing x: the strip between a point's x and the next one's (x0 after the last) has
    the height of the best y seen so far, ``HV = sum_i (x_i - x_{i+1}) * (max_{j<=i} y_j - y0)``.
    """
    x0, y0 = float(ref[0]), float(ref[1])
    pts = sorted(((float(x), float(y)) for x, y in points if _finite((x, y)) and x > x0 and y > y0), reverse=True)
    area, best = 0.0, y0
    for i, (x, y) in enumerate(pts):
        best = max(best, y)
        area += (x - (pts[i + 1][0] if i + 1 < len(pts) else x0)) * (best - y0)
    return area
