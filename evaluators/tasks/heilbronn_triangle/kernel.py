"""The Numba kernel of the Heilbronn triangle problem (the smallest triangle of a point set), with a numpy reference (tests and bench/kernels.py compare the two). Only the
trusted scorer process compiles or caches it (evaluators/scorer.py: its cache is out of every candidate's view)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def min_triangle_area(points: np.ndarray) -> tuple[float, int, int, int]:
    """Smallest area of a triangle with vertices among the points, and its vertices (i, j, k).

    With fewer than three points the area is inf and the indices are -1.
    """
    n = points.shape[0]
    best, bi, bj, bk = np.inf, -1, -1, -1
    for i in range(n):
        for j in range(i + 1, n):
            ux = points[j, 0] - points[i, 0]
            uy = points[j, 1] - points[i, 1]
            for k in range(j + 1, n):
                vx = points[k, 0] - points[i, 0]
                vy = points[k, 1] - points[i, 1]
                area = 0.5 * abs(ux * vy - uy * vx)
                if area < best:
                    best, bi, bj, bk = area, i, j, k
    return best, bi, bj, bk


def min_triangle_area_numpy(points: np.ndarray) -> tuple[float, int, int, int]:
    """Vectorised numpy version of min_triangle_area (reference and benchmark baseline)."""
    n = points.shape[0]
    i, j, k = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij"))
    keep = (i < j) & (j < k)
    i, j, k = i[keep], j[keep], k[keep]
    if i.size == 0:
        return np.inf, -1, -1, -1
    u = points[j] - points[i]
    v = points[k] - points[i]
    areas = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    m = int(np.argmin(areas))
    return float(areas[m]), int(i[m]), int(j[m]), int(k[m])


def warm_up() -> None:
    min_triangle_area(np.random.default_rng(0).random((4, 2)))
