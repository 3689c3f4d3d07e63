"""Point labels for the report's scatter: every DA named, no label over another or over a point.

A small label repel for a handful of points: each label tries spots on rings of growing radius
around its point, in the order of the directions that lead away from its neighbours, and takes
the first spot that is free. A spot is free when the label's box lies inside the axes and clear
of the labels already placed and of every marker, and, for a label set off its point, when its
leader line passes no other marker or label and crosses no other leader line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["label_points"]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels

#: points from the marker's edge to the label's box; the first ring is "next to the point"
_RINGS = (5.0, 14.0, 24.0, 36.0, 50.0, 66.0)
_ANGLES = np.deg2rad(np.arange(0, 360, 15))
#: a point with another point closer than this (in points) is crowded: its label stands off
#: on a leader line, which says whose label it is
_CROWDED_PT = 40.0
_FONT_SIZE = 10.0


def _box_around(anchor: np.ndarray, size: tuple[float, float], reach: float, angle: float) -> Box:
    """The box of ``size`` whose centre is ``reach`` (+ half the box) from ``anchor``."""
    w, h = size
    cx = anchor[0] + math.cos(angle) * (reach + w / 2)
    cy = anchor[1] + math.sin(angle) * (reach + h / 2)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _area(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _crosses(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> bool:
    """Whether the segments pq and rs cross (touching end points do not count)."""

    def turn(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return (turn(p, q, r) * turn(p, q, s) < 0) and (turn(r, s, p) * turn(r, s, q) < 0)


def _leader(anchor: np.ndarray, box: Box, marker: float) -> tuple[np.ndarray, np.ndarray]:
    """The leader line as drawn: from the marker's edge towards the box's centre, to its edge."""
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    direction = centre - anchor
    length = float(np.hypot(*direction))
    if length == 0.0:
        return anchor, anchor
    unit = direction / length
    half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    # distance from the centre back to the box's edge along the line
    inside = min(half_w / abs(unit[0]) if unit[0] else math.inf,
                 half_h / abs(unit[1]) if unit[1] else math.inf)
    return anchor + unit * marker, centre - unit * inside


def label_points(ax: Any, x: np.ndarray, y: np.ndarray, names: list[str],
                 marker_size: float) -> list[Any]:
    """Annotate each point ``(x[i], y[i])`` of ``ax`` with ``names[i]``, without overlaps.

    Args:
        ax: a Matplotlib axes whose figure has a canvas (Agg); its layout is settled first
            (constrained layout moves the axes), so the positions found are final.
        x, y: float arrays ``[n]`` of the points, in data coordinates.
        names: the ``n`` labels.
        marker_size: the scatter's ``s`` (points squared), for the markers' radius.

    Returns:
        The ``n`` annotations, in the order of ``names``. Each has a white backing, so lines under
        it do not cross its text; one set away from its point has a leader line. Where no spot is
        free (too many points for the axes), a label takes the spot of least overlap.
    """
    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0  # display pixels per typographic point
    pad = 0.2 * _FONT_SIZE * px  # the white backing around the text's box
    n = len(names)
    anchors = ax.transData.transform(np.column_stack([x, y])) if n else np.zeros((0, 2))
    frame = ax.get_window_extent(renderer)
    marker = (math.sqrt(marker_size) / 2 + 1.5) * px  # marker radius in pixels, with its edge

    sizes = []
    for name in names:
        probe = ax.text(0, 0, name, fontsize=_FONT_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((extent.width + 2 * pad, extent.height + 2 * pad))

    distance = np.hypot(*(anchors[:, None, :] - anchors[None, :, :]).transpose(2, 0, 1))
    crowded = (distance < _CROWDED_PT * px).sum(axis=1) - 1
    boxes: list[Box] = []
    leaders: list[tuple[np.ndarray, np.ndarray]] = []

    def conflicts(i: int, b: Box, with_leader: bool) -> float:
        """0 for a free spot; otherwise how badly the spot collides (for the fallback)."""
        cost = sum(_area(b, o) for o in boxes)
        near = np.hypot(np.clip(anchors[:, 0], b[0], b[2]) - anchors[:, 0],
                        np.clip(anchors[:, 1], b[1], b[3]) - anchors[:, 1])
        cost += 1e4 * float(np.count_nonzero(near < marker))
        cost += 1e4 * (max(0.0, frame.x0 - b[0]) + max(0.0, b[2] - frame.x1)
                       + max(0.0, frame.y0 - b[1]) + max(0.0, b[3] - frame.y1))
        if with_leader:
            start, end = _leader(anchors[i], b, marker)
            steps = np.linspace(0.0, 1.0, 24)[:, None]
            line = start + steps * (end - start)
            others = np.delete(anchors, i, axis=0)
            if len(others):
                gaps = np.hypot(*(line[:, None, :] - others[None, :, :]).transpose(2, 0, 1))
                cost += 1e3 * float(np.count_nonzero(gaps.min(axis=0) < marker))
            for o in boxes:
                inside = ((line[:, 0] > o[0]) & (line[:, 0] < o[2])
                          & (line[:, 1] > o[1]) & (line[:, 1] < o[3]))
                cost += 1e3 * float(inside.any())
            cost += 1e3 * sum(_crosses(start, end, *seg) for seg in leaders)
        return cost

    placed: dict[int, Any] = {}
    # crowded points choose first, while the spots next to them are still free
    for i in sorted(range(n), key=lambda i: (-crowded[i], -y[i])):
        if crowded[i]:
            near = anchors[(distance[i] < _CROWDED_PT * px) & (np.arange(n) != i)]
            away = anchors[i] - near.mean(axis=0)
        else:
            away = np.array([1.0 if x[i] <= np.median(x) else -1.0, 0.35])  # towards the middle
        heading = math.atan2(away[1], away[0]) if np.any(away) else 0.0
        by_heading = sorted(_ANGLES, key=lambda a: abs(math.remainder(a - heading, 2 * math.pi)))
        rings = _RINGS[1:] if crowded[i] else _RINGS
        tries = [(r, a) for r in rings for a in by_heading]
        best, best_cost = tries[0], math.inf
        for r, a in tries:
            cost = conflicts(i, _box_around(anchors[i], sizes[i], marker + r * px, a),
                             with_leader=r > _RINGS[0])
            if cost < best_cost:
                best, best_cost = (r, a), cost
            if cost == 0.0:
                break
        r, a = best
        b = _box_around(anchors[i], sizes[i], marker + r * px, a)
        boxes.append(b)
        with_leader = r > _RINGS[0]
        if with_leader:
            leaders.append(_leader(anchors[i], b, marker))
        offset = (((b[0] + b[2]) / 2 - anchors[i, 0]) / px,
                  ((b[1] + b[3]) / 2 - anchors[i, 1]) / px)
        ann = ax.annotate(
            names[i], (x[i], y[i]), xytext=offset, textcoords="offset points", ha="center",
            va="center", fontsize=_FONT_SIZE, color=".15", zorder=4,
            bbox={"boxstyle": f"square,pad={pad / (_FONT_SIZE * px):.2f}", "fc": "white",
                  "ec": "none", "alpha": 0.85},
            arrowprops={"arrowstyle": "-", "color": ".35", "lw": 0.8, "shrinkA": 0,
                        "shrinkB": marker / px} if with_leader else None,
        )
        ann.set_in_layout(False)  # inside the axes by construction: the layout stays as it is
        placed[i] = ann
    return [placed[i] for i in range(n)]
