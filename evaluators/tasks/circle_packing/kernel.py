"""The Numba kernel of circle packings, with a numpy reference (tests and bench/kernels.py compare the two). Only the
trusted scorer process compiles or caches it (evaluators/scorer.py: its cache is out of every candidate's view)."""

from __future__ import annotations

import numpy as np
from numba import njit

OK, OUTSIDE, OVERLAP = 0, 1, 2


@njit(cache=True, nogil=True)
def check_circles(centers: np.ndarray, radii: np.ndarray) -> tuple[int, int, int]:
    """Zero-tolerance check of circles in the unit square.

    Returns (code, i, j): OK, OUTSIDE with the circle i, or OVERLAP with the pair (i, j).
    """
    n = radii.shape[0]
    for i in range(n):
        x = centers[i, 0]
        y = centers[i, 1]
        r = radii[i]
        if r < 0.0 or x - r < 0.0 or x + r > 1.0 or y - r < 0.0 or y + r > 1.0:
            return OUTSIDE, i, -1
    for i in range(n):
        for j in range(i + 1, n):
            dx = centers[i, 0] - centers[j, 0]
            dy = centers[i, 1] - centers[j, 1]
            s = radii[i] + radii[j]
            if s * s > dx * dx + dy * dy:
                # confirm with the square root form before calling it an overlap
                if s > np.sqrt(dx * dx + dy * dy):
                    return OVERLAP, i, j
    return OK, -1, -1


def check_circles_numpy(centers: np.ndarray, radii: np.ndarray) -> tuple[int, int, int]:
    """Vectorised numpy version of check_circles, the baseline of bench/kernels.py."""
    x, y = centers[:, 0], centers[:, 1]
    outside = (radii < 0) | (x - radii < 0) | (x + radii > 1) | (y - radii < 0) | (y + radii > 1)
    if outside.any():
        return OUTSIDE, int(np.argmax(outside)), -1
    d = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    s = radii[:, None] + radii[None, :]
    bad = np.triu(s > d, k=1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        return OVERLAP, int(i), int(j)
    return OK, -1, -1


def warm_up() -> None:
    points = np.random.default_rng(0).random((4, 2))
    check_circles(points, np.full(4, 0.01))
