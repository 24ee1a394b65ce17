"""The Numba kernel of min_max_distance (the closest and the farthest pair of a point set), with a numpy reference (tests and bench/kernels.py compare the two). Only the
trusted scorer process compiles or caches it (evaluators/scorer.py: its cache is out of every candidate's view)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def distance_extremes(points: np.ndarray) -> tuple[float, int, int, float, int, int]:
    """Smallest and largest squared pairwise distance of points (any dimension), with their pairs.

    Returns (min_d2, i, j, max_d2, k, l); with fewer than two points min_d2 is inf and max_d2 is 0.
    """
    n, dim = points.shape
    dmin, mi, mj = np.inf, -1, -1
    dmax, xi, xj = 0.0, -1, -1
    for i in range(n):
        for j in range(i + 1, n):
            d2 = 0.0
            for c in range(dim):
                t = points[i, c] - points[j, c]
                d2 += t * t
            if d2 < dmin:
                dmin, mi, mj = d2, i, j
            if d2 > dmax or xi < 0:
                dmax, xi, xj = d2, i, j
    return dmin, mi, mj, dmax, xi, xj


def distance_extremes_numpy(points: np.ndarray) -> tuple[float, int, int, float, int, int]:
    """Vectorised numpy version of distance_extremes (reference and benchmark baseline)."""
    n = points.shape[0]
    if n < 2:
        return np.inf, -1, -1, 0.0, -1, -1
    i, j = np.triu_indices(n, k=1)
    d2 = ((points[i] - points[j]) ** 2).sum(-1)
    a, b = int(np.argmin(d2)), int(np.argmax(d2))
    return float(d2[a]), int(i[a]), int(j[a]), float(d2[b]), int(i[b]), int(j[b])


def warm_up() -> None:
    distance_extremes(np.random.default_rng(0).random((4, 2)))
