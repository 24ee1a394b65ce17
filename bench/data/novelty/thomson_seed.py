"""24 unit charges on a sphere: evolve place_points() to lower their Coulomb energy."""

import math

N_POINTS = 24


# EVOLVE-BLOCK-START
STEPS = 30
STEP_SIZE = 0.02


def place_points():
    """N_POINTS points [x, y, z] on the unit sphere: a Fibonacci spiral, then a few repulsion steps."""
    golden = math.pi * (3 - math.sqrt(5))
    points = []
    for i in range(N_POINTS):
        z = 1 - 2 * (i + 0.5) / N_POINTS
        r = math.sqrt(1 - z * z)
        points.append([r * math.cos(golden * i), r * math.sin(golden * i), z])
    for _ in range(STEPS):
        moved = []
        for i, p in enumerate(points):
            force = [0.0, 0.0, 0.0]
            for j, q in enumerate(points):
                if i != j:
                    d = math.dist(p, q)
                    for k in range(3):
                        force[k] += (p[k] - q[k]) / d ** 3
            x = [p[k] + STEP_SIZE * force[k] / N_POINTS for k in range(3)]
            norm = math.sqrt(sum(c * c for c in x))
            moved.append([c / norm for c in x])
        points = moved
    return points
# EVOLVE-BLOCK-END
