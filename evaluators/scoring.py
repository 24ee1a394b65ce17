"""Trusted scorers of built-in tasks: they see only the data a candidate returned.

A scorer never imports or runs candidate code; it validates the returned data
(types, shapes, finiteness, domain) and computes the score itself.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .verdict import Verdict


def _kernels():
    """The Numba kernels, imported on first use: only the scorer process pays for numba."""
    from . import kernels

    return kernels


class InvalidData(ValueError):
    pass


NON_FINITE_TOKENS = ("nan", "inf", "-inf")  # how the sandbox's JSON carries non-finite floats


def _numbers(value: Any, what: str) -> np.ndarray:
    """`value` as a float64 array; only ints and floats are numbers (not bools, strings or None)."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidData(f"{what} is not an array of numbers ({exc})") from None
    if raw.dtype.kind == "U" and np.isin(raw, NON_FINITE_TOKENS).any():
        raise InvalidData(f"{what} holds non-finite values (NaN or inf)")
    if raw.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "S": "bytes", "O": "non-numbers", "c": "complex numbers"}
        raise InvalidData(f"{what} is not an array of numbers (it holds {kind.get(raw.dtype.kind, raw.dtype)})")
    array = raw.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InvalidData(f"{what} holds non-finite values (NaN or inf)")
    return np.ascontiguousarray(array)


def as_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = _numbers(value, what)
    if array.shape != shape:
        raise InvalidData(f"{what} has shape {array.shape}, expected {shape}")
    return array


def as_vector(value: Any, min_len: int, max_len: int, what: str) -> np.ndarray:
    array = _numbers(value, what)
    if array.ndim != 1 or not min_len <= array.shape[0] <= max_len:
        raise InvalidData(f"{what} has shape {array.shape}, expected (n,) with {min_len} <= n <= {max_len}")
    return array


def score_circle_packing(value: Any, n: int) -> Verdict:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return Verdict.invalid("run_packing() must return (centers, radii)")
    try:
        centers = as_array(value[0], (n, 2), "centers")
        radii = as_array(value[1], (n,), "radii")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    kernels = _kernels()
    code, i, j = kernels.check_circles(centers, radii)
    if code == kernels.OUTSIDE:
        x, y = centers[i]
        r = radii[i]
        return Verdict.invalid(
            f"circle {i} (center ({float(x)!r}, {float(y)!r}), radius {float(r)!r}) is not inside the unit square"
            if r >= 0 else f"circle {i} has a negative radius {float(r)!r}"
        )
    if code == kernels.OVERLAP:
        d = float(np.linalg.norm(centers[i] - centers[j]))
        return Verdict.invalid(
            f"circles {i} and {j} overlap: r_i + r_j = {float(radii[i] + radii[j])!r} > distance {float(d)!r}"
        )
    total = float(radii.sum())
    return Verdict(
        correct=True,
        combined_score=total,
        public={"sum_radii": total, "n": n, "min_radius": float(radii.min()), "max_radius": float(radii.max())},
        private={"centers": centers.tolist(), "radii": radii.tolist()},
        text_feedback=f"valid packing of {n} circles, sum of radii {float(total)!r}",
    )


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
    area, i, j, k = _kernels().min_triangle_area(points)
    score = float(area / (TRIANGLE_SIDE**2 * np.sqrt(3.0) / 4.0))
    return Verdict(
        correct=True,
        combined_score=score,
        public={"min_area": score, "smallest_triangle": [i, j, k], "n": n},
        private={"points": points.tolist()},
        text_feedback=f"valid: {n} points, smallest triangle {i}, {j}, {k} with normalised area {float(score)!r}",
    )


COORDINATE_LIMIT = 1e6


def score_min_max_distance(value: Any, n: int, dim: int, best: float) -> Verdict:
    """best / (max distance / min distance)^2 of n points in R^dim: 1.0 matches the best known ratio."""
    try:
        points = as_array(value, (n, dim), "points")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    too_far = np.abs(points).max(axis=1) > COORDINATE_LIMIT
    if too_far.any():
        i = int(np.argmax(too_far))
        return Verdict.invalid(f"point {i} has a coordinate beyond +-{COORDINATE_LIMIT:,.0f}: {points[i].tolist()!r}")
    dmin2, i, j, dmax2, k, l = _kernels().distance_extremes(points)
    if dmin2 == 0.0:
        return Verdict.invalid(f"points {i} and {j} coincide at {points[i].tolist()!r}: the minimum distance is 0")
    ratio2 = dmax2 / dmin2
    if not np.isfinite(ratio2):
        return Verdict.invalid(f"points {i} and {j} nearly coincide: the distance ratio overflows")
    score = float(best / ratio2)
    return Verdict(
        correct=True,
        combined_score=score,
        public={"ratio_squared": float(ratio2), "ratio": float(np.sqrt(ratio2)), "min_distance": float(np.sqrt(dmin2)),
                "max_distance": float(np.sqrt(dmax2)), "closest_pair": [i, j], "farthest_pair": [k, l], "n": n},
        private={"points": points.tolist()},
        text_feedback=f"valid: (max/min distance)^2 = {float(ratio2)!r}, closest pair {i}, {j}, farthest pair {k}, {l}",
    )


def autocorrelation_bound(heights: np.ndarray) -> tuple[float, int]:
    """max_t (f*f)(t) / (integral f)^2 of the step function with these heights on [-1/4, 1/4].

    With n steps of width h = 1/(2n), f*f is piecewise linear with knots t_m = -1/2 + m*h and
    (f*f)(t_m) = h * convolve(heights, heights)[m - 1], so the bound is exact. Also returns m.
    """
    a = heights / heights.max()  # scale-free; avoids overflow
    conv = np.convolve(a, a)
    m = int(np.argmax(conv))
    return float(2 * a.shape[0] * conv[m] / a.sum() ** 2), m + 1


def score_autocorrelation_first(value: Any, max_steps: int, best: float) -> Verdict:
    """best / C for a non-negative step function f on [-1/4, 1/4]: 1.0 matches the best known bound."""
    try:
        heights = as_vector(value, 1, max_steps, "heights")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    if (heights < 0).any():
        i = int(np.argmax(heights < 0))
        return Verdict.invalid(f"heights[{i}] = {float(heights[i])!r} is negative; f must be non-negative")
    if heights.max() == 0.0:
        return Verdict.invalid("all heights are zero; the integral of f must be positive")
    bound, knot = autocorrelation_bound(heights)
    n = heights.shape[0]
    t = -0.5 + knot / (2 * n)
    return Verdict(
        correct=True,
        combined_score=best / bound,
        public={"bound": bound, "n_steps": n, "argmax_t": t, "zero_steps": int((heights == 0).sum())},
        private={"heights": heights.tolist()},
        text_feedback=f"valid: {n} steps, max (f*f)/(integral f)^2 = {float(bound)!r}, reached at t = {float(t)!r}",
    )


# berlin52 of TSPLIB (G. Reinelt, "TSPLIB - a traveling salesman problem library", ORSA Journal on Computing
# 3(4), 1991): 52 locations in Berlin (Groetschel), EDGE_WEIGHT_TYPE EUC_2D; its optimal tour is 7542 long.
BERLIN52 = (
    (565, 575), (25, 185), (345, 750), (945, 685), (845, 655), (880, 660), (25, 230), (525, 1000), (580, 1175),
    (650, 1130), (1605, 620), (1220, 580), (1465, 200), (1530, 5), (845, 680), (725, 370), (145, 665), (415, 635),
    (510, 875), (560, 365), (300, 465), (520, 585), (480, 415), (835, 625), (975, 580), (1215, 245), (1320, 315),
    (1250, 400), (660, 180), (410, 250), (420, 555), (575, 665), (1150, 1160), (700, 580), (685, 595), (685, 610),
    (770, 610), (795, 645), (720, 635), (760, 650), (475, 960), (95, 260), (875, 920), (700, 500), (555, 815),
    (830, 485), (1170, 65), (830, 610), (605, 625), (595, 360), (1340, 725), (1740, 245),
)
BERLIN52_OPTIMUM = 7542
_TOUR_TEXT_MAX = 64 * 1024  # what a tour of 52 cities may take as text, whitespace and all
_CITY = re.compile(r"[0-9]{1,6}")


def tsplib_length(points: tuple[tuple[float, float], ...] | list, tour: list[int]) -> int:
    """A closed tour's length with TSPLIB's EUC_2D distance: each edge's Euclidean length rounded to the nearest
    integer (nint, as TSPLIB defines it)."""
    xy = np.asarray(points, dtype=np.float64)[np.asarray(tour)]
    edges = np.sqrt(((xy - np.roll(xy, -1, axis=0)) ** 2).sum(axis=1))
    return int(np.floor(edges + 0.5).sum())


def score_tsp_tour(value: Any, points: tuple[tuple[float, float], ...] = BERLIN52,
                   optimum: int = BERLIN52_OPTIMUM) -> Verdict:
    """A tour printed by a program (hostile text): the city indices 0..n-1, each once, separated by whitespace.
    combined_score = optimum / length, so 1.0 is an optimal tour."""
    n = len(points)
    if not isinstance(value, str):
        return Verdict.invalid(f"the program must print its tour as text on stdout (got {type(value).__name__})")
    if len(value) > _TOUR_TEXT_MAX:
        return Verdict.invalid(f"the program printed {len(value)} characters; a tour of {n} cities is far shorter")
    words = value.split()
    if len(words) != n:
        return Verdict.invalid(f"the program printed {len(words)} words on stdout; a tour is exactly {n} city "
                               f"indices (0 to {n - 1}) separated by whitespace, and nothing else"
                               + (f" (first words: {' '.join(w[:20] for w in words[:5])})" if words else ""))
    bad = next((w for w in words if not _CITY.fullmatch(w)), None)
    if bad is not None:
        return Verdict.invalid(f"{bad[:40]!r} is not a city index: print plain decimal integers 0 to {n - 1}")
    tour = [int(w) for w in words]
    out_of_range = next((c for c in tour if c >= n), None)
    if out_of_range is not None:
        return Verdict.invalid(f"city {out_of_range} does not exist: the cities are 0 to {n - 1}")
    if len(set(tour)) != n:
        seen, twice = set(), None
        for c in tour:
            if c in seen:
                twice = c
                break
            seen.add(c)
        missing = sorted(set(range(n)) - set(tour))
        return Verdict.invalid(f"city {twice} is visited twice and {len(missing)} cities never "
                               f"(first missing: {missing[:5]}); a tour visits each city exactly once")
    length = tsplib_length(points, tour)
    return Verdict(
        correct=True,
        combined_score=optimum / length,
        public={"tour_length": length, "optimum": optimum, "gap_percent": 100.0 * (length - optimum) / optimum},
        private={"tour": tour},
        text_feedback=f"valid tour of length {length} (optimum {optimum}, gap "
                      f"{100.0 * (length - optimum) / optimum:.3f}%)",
    )
