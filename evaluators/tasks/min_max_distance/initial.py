"""Min-max distance ratio: place N points in the plane, minimising (max distance / min distance)^2."""

import numpy as np

N_POINTS = 16


# EVOLVE-BLOCK-START
def construct_points(n):
    """A square grid, filled row by row."""
    columns = int(np.ceil(np.sqrt(n)))
    spacing = 1.0
    points = [(spacing * (k % columns), spacing * (k // columns)) for k in range(n)]
    return np.array(points, dtype=float)
# EVOLVE-BLOCK-END


def run_points():
    """Entry point called by the evaluator: returns the points, shape (N, 2)."""
    return construct_points(N_POINTS)
