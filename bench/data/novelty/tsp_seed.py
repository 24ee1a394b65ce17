"""A travelling-salesman heuristic: evolve solve() to find shorter tours, fast."""

import math


# EVOLVE-BLOCK-START
def solve(points):
    """Nearest-neighbour tour from city 0. Returns a permutation of range(len(points))."""
    n = len(points)
    unvisited = set(range(1, n))
    tour = [0]
    while unvisited:
        last = points[tour[-1]]
        nearest = min(unvisited, key=lambda j: math.dist(last, points[j]))
        unvisited.remove(nearest)
        tour.append(nearest)
    return tour
# EVOLVE-BLOCK-END
