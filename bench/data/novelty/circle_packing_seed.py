"""Circle packing: place N disjoint circles in the unit square, maximising the sum of radii."""

import numpy as np

N_CIRCLES = 26


# EVOLVE-BLOCK-START
def construct_centers(n):
    """Concentric rings around the middle of the square; an outer ring takes the rest."""
    centers = [(0.5, 0.5)]
    rings = [(8, 0.22), (17, 0.42)]
    rings.append((n - len(centers) - sum(count for count, _ in rings), 0.55))  # the rest, if any
    for count, radius in rings:
        for k in range(count):
            if len(centers) == n:
                break
            angle = 2.0 * np.pi * k / count + 0.1
            centers.append((0.5 + radius * np.cos(angle), 0.5 + radius * np.sin(angle)))
    centers = np.array(centers[:n], dtype=float)
    return np.clip(centers, 0.02, 0.98)


def compute_radii(centers):
    """Largest radii that keep every circle inside the square, then shrink overlapping pairs."""
    n = len(centers)
    radii = np.minimum.reduce([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]])
    for _ in range(3):
        for i in range(n):
            for j in range(i + 1, n):
                d = np.linalg.norm(centers[i] - centers[j])
                if radii[i] + radii[j] > d:
                    scale = d / (radii[i] + radii[j])
                    radii[i] *= scale
                    radii[j] *= scale
    return radii * (1 - 1e-9)
# EVOLVE-BLOCK-END


def run_packing():
    """Entry point called by the evaluator: returns centers (N, 2) and radii (N,)."""
    centers = construct_centers(N_CIRCLES)
    radii = compute_radii(centers)
    return centers, radii
