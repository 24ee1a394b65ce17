"""Circle packing: 26 disjoint circles in the unit square, maximise the sum of radii."""

import numpy as np

N_CIRCLES = 26


# EVOLVE-BLOCK-START
def place_centers(n):
    """A middle circle, two rings around it, and the rest on an outer ring."""
    centers = [(0.5, 0.5)]
    rings = [(8, 0.23), (16, 0.41)]
    rings.append((n - 1 - sum(k for k, _ in rings), 0.47))
    for count, radius in rings:
        for k in range(count):
            angle = 6.283185 * k / count + 0.15
            centers.append((0.5 + radius * np.cos(angle), 0.5 + radius * np.sin(angle)))
    return np.clip(np.array(centers[:n], dtype=float), 0.03, 0.97)


def fit_radii(centers):
    """Each radius as large as the walls allow, then overlapping pairs shrink in proportion."""
    n = len(centers)
    radii = np.min(np.hstack([centers, 1 - centers]), axis=1)
    for i in range(n):
        for j in range(i + 1, n):
            gap = np.sqrt(np.sum((centers[i] - centers[j]) ** 2))
            if radii[i] + radii[j] > gap:
                shrink = gap / (radii[i] + radii[j])
                radii[i] *= shrink
                radii[j] *= shrink
    return radii * (1 - 1e-6)
# EVOLVE-BLOCK-END


def run_packing():
    centers = place_centers(N_CIRCLES)
    return centers, fit_radii(centers)
