"""circle_packing_<n>: pack n disjoint circles in the unit square, maximising the sum of their radii."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ....results import Verdict
from ..base import BuiltinTask
from ..checks import InvalidData, as_array


def score_circle_packing(value: Any, n: int) -> Verdict:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return Verdict.invalid("run_packing() must return (centers, radii)")
    try:
        centers = as_array(value[0], (n, 2), "centers")
        radii = as_array(value[1], (n,), "radii")
    except InvalidData as exc:
        return Verdict.invalid(str(exc))
    from . import kernel as kernels  # imported on first use: only the scorer process pays for numba
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
        public_metrics={"sum_radii": total, "n": n, "min_radius": float(radii.min()), "max_radius": float(radii.max())},
        private_metrics={"centers": centers.tolist(), "radii": radii.tolist()},
        text_feedback=f"valid packing of {n} circles, sum of radii {float(total)!r}",
    )


def builtin(n: int, best: float) -> BuiltinTask:
    return BuiltinTask(
        name=f"circle_packing_{n}",
        summary=f"pack {n} disjoint circles in the unit square, maximise the sum of radii (best known {best})",
        description=(
            f"Pack {n} disjoint circles inside the unit square [0,1]x[0,1] so that the sum of their radii is "
            f"as large as possible. The program must define run_packing() returning (centers, radii): centers "
            f"an array of shape ({n}, 2), radii an array of shape ({n},). The checker has zero tolerance: every "
            f"circle must satisfy r <= x <= 1 - r and r <= y <= 1 - r, and every pair r_i + r_j <= |c_i - c_j|. "
            f"combined_score is the sum of radii of a valid packing; an invalid one scores nothing. The best "
            f"known sum is {best}. Good packings are irregular: mixed circle sizes, larger circles near the "
            f"middle or corners, smaller ones filling gaps; numeric optimisation of centers and radii (for "
            f"example a penalty method or a linear program for radii given centers) helps. numpy and scipy "
            f"may be used if installed; the program must finish within the time limit."
        ),
        seed_file="circle_packing/initial.py",
        seed_replacements={"N_CIRCLES = 26": f"N_CIRCLES = {n}"},
        entry="run_packing",
        target_score=best,
        scorer=partial(score_circle_packing, n=n),
        drawing="circles",
        kernel=f"{__name__}.kernel",
    )
