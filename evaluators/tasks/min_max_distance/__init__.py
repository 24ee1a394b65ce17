"""min_max_distance_<n>: n points in the plane, minimising the ratio of the largest to the smallest distance."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ....results import Verdict
from ..base import BuiltinTask
from ..checks import InvalidData, as_array


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
    from . import kernel  # imported on first use: only the scorer process pays for numba

    dmin2, i, j, dmax2, k, l = kernel.distance_extremes(points)
    if dmin2 == 0.0:
        return Verdict.invalid(f"points {i} and {j} coincide at {points[i].tolist()!r}: the minimum distance is 0")
    ratio2 = dmax2 / dmin2
    if not np.isfinite(ratio2):
        return Verdict.invalid(f"points {i} and {j} nearly coincide: the distance ratio overflows")
    score = float(best / ratio2)
    return Verdict(
        correct=True,
        combined_score=score,
        public_metrics={"ratio_squared": float(ratio2), "ratio": float(np.sqrt(ratio2)), "min_distance": float(np.sqrt(dmin2)),
                "max_distance": float(np.sqrt(dmax2)), "closest_pair": [i, j], "farthest_pair": [k, l], "n": n},
        private_metrics={"points": points.tolist()},
        text_feedback=f"valid: (max/min distance)^2 = {float(ratio2)!r}, closest pair {i}, {j}, farthest pair {k}, {l}",
    )


def builtin(n: int, best: float) -> BuiltinTask:
    return BuiltinTask(
        name=f"min_max_distance_{n}",
        summary=f"place {n} points in the plane, minimise (max distance / min distance)^2 "
                f"(best known {best}; score = best / ratio^2)",
        description=(
            f"Place {n} points in the plane so that the ratio of the largest to the smallest pairwise distance "
            f"is as small as possible. The program must define run_points() returning an array of shape "
            f"({n}, 2). Checks: finite numbers of the exact shape, every coordinate within "
            f"+-{COORDINATE_LIMIT:,.0f}, no two points coinciding. The ratio is scale- and rotation-invariant. "
            f"combined_score = {best} / (max distance / min distance)^2, so higher is better and 1.0 "
            f"matches the best known ratio^2 = {best} (AlphaEvolve, 2025). Hints: good configurations look like pieces of a triangular (hexagonal) lattice "
            f"bounded by a near-circle, then relaxed; minimise the max distance subject to all distances >= 1 "
            f"with a penalty method or a smooth max (log-sum-exp) and many random restarts. numpy is available, "
            f"scipy may not be; the program must finish within the time limit."
        ),
        seed_file="min_max_distance/initial.py",
        seed_replacements={"N_POINTS = 16": f"N_POINTS = {n}"},
        entry="run_points",
        target_score=1.0,
        scorer=partial(score_min_max_distance, n=n, dim=2, best=best),
        drawing="points",
        kernel=f"{__name__}.kernel",
    )
