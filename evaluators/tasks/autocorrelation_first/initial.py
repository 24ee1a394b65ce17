"""First autocorrelation inequality: a non-negative step function f on [-1/4, 1/4]
minimising max_t (f*f)(t) / (integral of f)^2."""

import numpy as np


# EVOLVE-BLOCK-START
def construct_heights():
    """A gentle linear ramp over equal steps."""
    n = 50
    u = (np.arange(n) + 0.5) / n * 2.0 - 1.0  # step midpoints mapped to [-1, 1]
    return 1.0 + 0.2 * u
# EVOLVE-BLOCK-END


def run_autocorrelation():
    """Entry point called by the evaluator: returns the step heights, shape (n,), left to right."""
    return construct_heights()
