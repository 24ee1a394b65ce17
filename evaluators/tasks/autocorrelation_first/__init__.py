"""autocorrelation_first: a non-negative step function minimising the first autocorrelation constant."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ....results import Verdict
from ..base import BuiltinTask
from ..checks import InvalidData, as_vector


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
        public_metrics={"bound": bound, "n_steps": n, "argmax_t": t, "zero_steps": int((heights == 0).sum())},
        private_metrics={"heights": heights.tolist()},
        text_feedback=f"valid: {n} steps, max (f*f)/(integral f)^2 = {float(bound)!r}, reached at t = {float(t)!r}",
    )


def builtin(best: float, max_steps: int = 600) -> BuiltinTask:
    return BuiltinTask(
        name="autocorrelation_first",
        summary=f"non-negative step function on [-1/4, 1/4] minimising max(f*f) / (integral f)^2 "
                f"(best known upper bound {best}; score = {best} / bound)",
        description=(
            f"First autocorrelation inequality: find a non-negative function f on [-1/4, 1/4] making "
            f"C = max_t (f*f)(t) / (integral of f)^2 as small as possible, where (f*f)(t) = integral of "
            f"f(x) f(t - x) dx is the autoconvolution. f is a step function: the program must define "
            f"run_autocorrelation() returning heights, an array of shape (n,) with 1 <= n <= {max_steps}, and "
            f"f = heights[i] on [-1/4 + i*h, -1/4 + (i+1)*h) with h = 1/(2n). Checks: finite numbers, a 1-D "
            f"array of allowed length, every height >= 0 and not all zero. C is computed exactly: f*f is "
            f"piecewise linear with knots at t = -1/2 + m*h, so C = 2n * max(np.convolve(heights, heights)) "
            f"/ sum(heights)^2 (invariant under scaling the heights). combined_score = {best} / C, so higher is "
            f"better and 1.0 matches the best known upper bound C <= {best} (AlphaEvolve, 2025, mathematical "
            f"discoveries, first autocorrelation inequality; the previous best was 1.5098). A constant f "
            f"gives C = 2. Hints: good functions are irregular and asymmetric, with narrow spikes and "
            f"possibly stretches of zero; optimise the heights directly (e.g. gradient descent on a soft-max of the "
            f"autoconvolution, or subgradient steps on its maximum, projecting onto heights >= 0), start from "
            f"a coarse solution and upsample it to more steps. numpy is available, scipy may not be; the "
            f"program must finish within the time limit."
        ),
        seed_file="autocorrelation_first/initial.py",
        entry="run_autocorrelation",
        target_score=1.0,
        scorer=partial(score_autocorrelation_first, max_steps=max_steps, best=best),
        drawing="step_function",
    )
