"""heilbronn_triangle_<n>: n points in a unit-area equilateral triangle, maximising the smallest triangle."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ....results import Verdict
from ..base import BuiltinTask
from ..checks import InvalidData, as_array


TRIANGLE_SIDE = 2.0 / 3.0**0.25  # the equilateral triangle (0,0), (s,0), (s/2, s*sqrt(3)/2) has area 1
TRIANGLE_TOLERANCE = 1e-12
_TRIANGLE_EDGES = ("bottom edge y = 0", "left edge y = sqrt(3)*x", "right edge y = sqrt(3)*(s - x)")


def triangle_edge_distances(points: np.ndarray, side: float = TRIANGLE_SIDE) -> np.ndarray:
    """Signed distances (n, 3) of points to the three edges of the triangle, positive inside."""
    x, y = points[:, 0], points[:, 1]
    root3 = np.sqrt(3.0)
    return np.stack([y, (root3 * x - y) / 2.0, (root3 * (side - x) - y) / 2.0], axis=1)


def score_heilbronn_triangle(value: Any, n: int) -> Verdict:
    """Smallest triangle area of n points in the unit-area equilateral triangle, over the triangle's area."""
    try:
        points = as_array(value, (n, 2), "points")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    distances = triangle_edge_distances(points)
    outside = distances < -TRIANGLE_TOLERANCE
    if outside.any():
        i, edge = (int(v) for v in np.argwhere(outside)[0])
        x, y = points[i]
        return Verdict.invalid(
            f"point {i} ({float(x)!r}, {float(y)!r}) is outside the triangle: {float(-distances[i, edge])!r} beyond the "
            f"{_TRIANGLE_EDGES[edge]} (tolerance {TRIANGLE_TOLERANCE})"
        )
    from . import kernel  # imported on first use: only the scorer process pays for numba

    area, i, j, k = kernel.min_triangle_area(points)
    score = float(area / (TRIANGLE_SIDE**2 * np.sqrt(3.0) / 4.0))
    return Verdict(
        correct=True,
        combined_score=score,
        public_metrics={"min_area": score, "smallest_triangle": [i, j, k], "n": n},
        private_metrics={"points": points.tolist()},
        text_feedback=f"valid: {n} points, smallest triangle {i}, {j}, {k} with normalised area {float(score)!r}",
    )


def builtin(n: int, best: float) -> BuiltinTask:
    return BuiltinTask(
        name=f"heilbronn_triangle_{n}",
        summary=f"place {n} points in a unit-area equilateral triangle, maximise the smallest triangle "
                f"area (best known {best})",
        description=(
            f"Heilbronn problem for triangles. Place {n} points in the equilateral triangle with vertices "
            f"(0, 0), (s, 0) and (s/2, s*sqrt(3)/2), where s = 2 / 3**0.25 = {TRIANGLE_SIDE!r} so that its "
            f"area is 1, maximising the smallest area of any triangle formed by three of the points. The "
            f"program must define run_heilbronn() returning an array of shape ({n}, 2) of (x, y) points. "
            f"Checks: finite numbers of the exact shape; every point inside the triangle, i.e. y >= 0, "
            f"y <= sqrt(3)*x and y <= sqrt(3)*(s - x), each with a tolerance of {TRIANGLE_TOLERANCE} in "
            f"distance to the edge. combined_score is the smallest area over all {n * (n - 1) * (n - 2) // 6} "
            f"triples divided by the triangle's area (higher is better; three collinear or coincident points "
            f"score 0). The best known value is {best} (AlphaEvolve, 2025). Hints: optimal configurations use "
            f"the boundary (several points on the edges and at or near the vertices) and are not symmetric "
            f"grids, which have collinear triples; maximise the minimum area by local search, random restarts "
            f"or a smooth surrogate (e.g. a soft-min of areas) with the points projected back into the "
            f"triangle. numpy is available, scipy may not be; the program must finish within the time limit."
        ),
        seed_file="heilbronn_triangle/initial.py",
        seed_replacements={"N_POINTS = 11": f"N_POINTS = {n}"},
        entry="run_heilbronn",
        target_score=best,
        scorer=partial(score_heilbronn_triangle, n=n),
        drawing="points_in_triangle",
        kernel=f"{__name__}.kernel",
    )
