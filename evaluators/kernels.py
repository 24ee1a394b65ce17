"""Numba kernels used by trusted scorers. Only trusted code compiles or caches them."""

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
