"""Trusted scorers of built-in tasks: they see only the data a candidate returned.

A scorer never imports or runs candidate code; it validates the returned data
(types, shapes, finiteness, domain) and computes the score itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels
from .verdict import Verdict


class InvalidData(ValueError):
    pass


def as_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidData(f"{what} is not an array of numbers ({exc})") from None
    if array.shape != shape:
        raise InvalidData(f"{what} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidData(f"{what} holds non-finite values (NaN or inf)")
    return np.ascontiguousarray(array)


def score_circle_packing(value: Any, n: int) -> Verdict:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return Verdict.invalid("run_packing() must return (centers, radii)")
    try:
        centers = as_array(value[0], (n, 2), "centers")
        radii = as_array(value[1], (n,), "radii")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    code, i, j = kernels.check_circles(centers, radii)
    if code == kernels.OUTSIDE:
        x, y = centers[i]
        r = radii[i]
        return Verdict.invalid(
            f"circle {i} (center ({x!r}, {y!r}), radius {r!r}) is not inside the unit square"
            if r >= 0 else f"circle {i} has a negative radius {r!r}"
        )
    if code == kernels.OVERLAP:
        d = float(np.linalg.norm(centers[i] - centers[j]))
        return Verdict.invalid(
            f"circles {i} and {j} overlap: r_i + r_j = {radii[i] + radii[j]!r} > distance {d!r}"
        )
    total = float(radii.sum())
    return Verdict(
        correct=True,
        combined_score=total,
        public={"sum_radii": total, "n": n, "min_radius": float(radii.min()), "max_radius": float(radii.max())},
        private={"centers": centers.tolist(), "radii": radii.tolist()},
        text_feedback=f"valid packing of {n} circles, sum of radii {total!r}",
    )
