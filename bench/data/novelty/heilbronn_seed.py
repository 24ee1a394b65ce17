"""Heilbronn problem for triangles: place N points in the unit-area equilateral triangle,
maximising the smallest area of a triangle formed by three of them."""

import numpy as np

N_POINTS = 11
SIDE = 2.0 / 3.0**0.25  # the triangle (0, 0), (SIDE, 0), (SIDE / 2, SIDE * sqrt(3) / 2) has area 1


# EVOLVE-BLOCK-START
def construct_points(n):
    """Evenly spaced points on a circle around the centroid of the triangle."""
    center = np.array([SIDE / 2, SIDE * np.sqrt(3) / 6])
    radius = 0.3
    angles = 2.0 * np.pi * np.arange(n) / n + 0.3
    return center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
# EVOLVE-BLOCK-END


def run_heilbronn():
    """Entry point called by the evaluator: returns the points, shape (N, 2)."""
    return construct_points(N_POINTS)
