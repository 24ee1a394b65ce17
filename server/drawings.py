"""Drawings of a built-in task's solution from a program's private metrics: circle packings, point sets in a
triangle or the plane, step functions; which one a task gets is named in its definition (evaluators/tasks/). Shared by the static report and the web view; each returns (svg, caption) or None
where the metrics hold nothing it can draw."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..evaluators.tasks import BUILTIN_TASKS
from ..evaluators.tasks.heilbronn_triangle import TRIANGLE_SIDE  # its unit-area equilateral triangle
from .svg import PALETTE, TARGET_COLOR, Plot, fmt_score, svg

__all__ = ["draw_solution"]


def _points(value: Any, dim: int = 2) -> np.ndarray | None:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    if array.ndim != 2 or array.shape[1] != dim or array.shape[0] == 0 or not np.isfinite(array).all():
        return None
    return array


def _draw_circles(private: dict[str, Any], whose: str) -> tuple[str, str] | None:
    centers = _points(private.get("centers"))
    try:
        radii = np.asarray(private.get("radii"), dtype=float)
    except (TypeError, ValueError):
        return None
    if centers is None or radii.shape != (centers.shape[0],) or not np.isfinite(radii).all():
        return None
    size, pad = 520, 20
    scale = size - 2 * pad
    parts = [f'<rect x="{pad}" y="{pad}" width="{scale}" height="{scale}" fill="#fff" stroke="#212529" '
             f'stroke-width="1.5"/>']
    rmax = float(radii.max()) or 1.0
    for i, ((x, y), r) in enumerate(zip(centers, radii)):
        shade = 0.25 + 0.55 * float(r) / rmax
        parts.append(f'<circle cx="{pad + x * scale:.2f}" cy="{pad + (1 - y) * scale:.2f}" r="{max(r, 0) * scale:.2f}" '
                     f'fill="{PALETTE[0]}" fill-opacity="{shade:.2f}" stroke="#1b3a5c" stroke-width="0.8">'
                     f'<title>circle {i}: center ({float(x)!r}, {float(y)!r}), radius {float(r)!r}</title></circle>')
    caption = (f"{whose} packing of {len(radii)} circles in the unit square (darker is larger), "
               f"sum of radii {fmt_score(float(radii.sum()))}.")
    return svg(size, size, "circle packing", parts), caption


def _draw_heilbronn(private: dict[str, Any], public: dict[str, Any], whose: str) -> tuple[str, str] | None:
    points = _points(private.get("points"))
    if points is None:
        return None
    s = TRIANGLE_SIDE
    height_t = s * math.sqrt(3) / 2
    size, pad = 520, 24
    scale = (size - 2 * pad) / s
    top = pad + (size - 2 * pad - height_t * scale) / 2

    def xy(x: float, y: float) -> str:
        return f"{pad + x * scale:.2f},{top + (height_t - y) * scale:.2f}"

    parts = [f'<polygon points="{xy(0, 0)} {xy(s, 0)} {xy(s / 2, height_t)}" fill="#f8f9fa" stroke="#212529" '
             f'stroke-width="1.5"/>']
    smallest = public.get("smallest_triangle")
    note = ""
    if (isinstance(smallest, list) and len(smallest) == 3
            and all(isinstance(i, int) and 0 <= i < len(points) for i in smallest)):
        corners = " ".join(xy(*points[i]) for i in smallest)
        parts.append(f'<polygon points="{corners}" fill="{TARGET_COLOR}" fill-opacity="0.3" stroke="{TARGET_COLOR}" '
                     f'stroke-width="1.2"><title>smallest triangle {smallest}</title></polygon>')
        note = f"; the shaded triangle (points {', '.join(map(str, smallest))}) is the smallest"
    for i, (x, y) in enumerate(points):
        cx, cy = xy(x, y).split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="4.5" fill="{PALETTE[0]}"><title>point {i}: '
                     f'({float(x)!r}, {float(y)!r})'
                     f'</title></circle>')
        parts.append(f'<text class="tick" x="{float(cx) + 6:.1f}" y="{float(cy) - 6:.1f}">{i}</text>')
    caption = f"{whose} {len(points)} points in the unit-area equilateral triangle{note}."
    return svg(size, size, "point set in the triangle", parts), caption


def _draw_points(private: dict[str, Any], public: dict[str, Any], whose: str) -> tuple[str, str] | None:
    points = _points(private.get("points"))
    if points is None:
        return None
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    size, pad = 520, 30
    scale = (size - 2 * pad) / span
    off = (span - (hi - lo)) / 2 * scale

    def xy(p: np.ndarray) -> tuple[float, float]:
        return pad + off[0] + (p[0] - lo[0]) * scale, size - pad - off[1] - (p[1] - lo[1]) * scale

    parts = [f'<rect x="0.5" y="0.5" width="{size - 1}" height="{size - 1}" fill="#fff" stroke="#dee2e6"/>']
    notes = []
    for key, color, dash, what in (("farthest_pair", PALETTE[0], ' stroke-dasharray="6 4"', "farthest pair"),
                                   ("closest_pair", TARGET_COLOR, "", "closest pair")):
        pair = public.get(key)
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) and 0 <= i < len(points)
                                                             for i in pair):
            (x1, y1), (x2, y2) = xy(points[pair[0]]), xy(points[pair[1]])
            parts.append(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" stroke="{color}" '
                         f'stroke-width="2"{dash}><title>{what} {pair}</title></line>')
            notes.append(f"{what} {pair[0]}–{pair[1]}")
    for i, p in enumerate(points):
        x, y = xy(p)
        parts.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="5" fill="#343a40"><title>point {i}: '
                     f'({float(p[0])!r}, {float(p[1])!r})</title></circle>')
    extra = f" ({'; '.join(notes)}: solid orange closest, dashed blue farthest)" if notes else ""
    caption = f"{whose} {len(points)} points, scaled to fit{extra}."
    return svg(size, size, "point set", parts), caption


def _draw_steps(private: dict[str, Any], whose: str) -> tuple[str, str] | None:
    try:
        heights = np.asarray(private.get("heights"), dtype=float)
    except (TypeError, ValueError):
        return None
    if heights.ndim != 1 or heights.size == 0 or not np.isfinite(heights).all() or heights.max() <= 0:
        return None
    plot = Plot(900, 320, (-0.25, 0.25), (0, float(heights.max()) * 1.06))
    plot.axes("x", "f(x)")
    n = heights.size
    path = [f"M{plot.x(-0.25):.1f},{plot.y(0):.1f}"]
    for i, h in enumerate(heights):
        path.append(f"V{plot.y(h):.1f}H{plot.x(-0.25 + (i + 1) / (2 * n)):.1f}")
    path.append(f"V{plot.y(0):.1f}")
    plot.add(f'<path d="{"".join(path)}" fill="{PALETTE[0]}" fill-opacity="0.25" stroke="{PALETTE[0]}" '
             f'stroke-width="1.2"/>')
    return plot.svg("step function"), f"{whose} step function f with {n} steps on [-1/4, 1/4]."


def draw_solution(task: str, private: dict[str, Any], public: dict[str, Any],
                  whose: str = "The best program's") -> tuple[str, str] | None:
    """The drawing of a built-in task's solution (the kind its definition names), or None."""
    builtin = BUILTIN_TASKS.get(task)
    drawing = builtin.drawing if builtin is not None else None
    if drawing == "circles":
        return _draw_circles(private, whose)
    if drawing == "points_in_triangle":
        return _draw_heilbronn(private, public, whose)
    if drawing == "points":
        return _draw_points(private, public, whose)
    if drawing == "step_function":
        return _draw_steps(private, whose)
    return None
