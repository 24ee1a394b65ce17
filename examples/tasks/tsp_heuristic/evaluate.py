"""Scores solve() on fixed random instances: shorter tours score higher, invalid tours score nothing."""

import importlib.util
import math
import random
import time

INSTANCES = [(seed, 60 + 20 * (seed % 3)) for seed in range(6)]


def _instance(seed, n):
    rng = random.Random(seed)
    return [(rng.random(), rng.random()) for _ in range(n)]


def _length(points, tour):
    return sum(math.dist(points[tour[i - 1]], points[tour[i]]) for i in range(len(tour)))


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    ratios, seconds = [], 0.0
    for seed, n in INSTANCES:
        points = _instance(seed, n)
        started = time.perf_counter()
        tour = list(program.solve(points))
        seconds += time.perf_counter() - started
        if sorted(tour) != list(range(n)):
            return {"combined_score": 0.0, "correct": False,
                    "error": f"instance {seed}: the tour is not a permutation of the {n} cities"}
        # normalise by sqrt(n * area), the scale of an optimal tour of uniform random points
        ratios.append(_length(points, tour) / math.sqrt(n))
    mean = sum(ratios) / len(ratios)
    return {
        "combined_score": 1.0 / mean,
        "correct": True,
        "public": {"mean_length_over_sqrt_n": mean, "solve_seconds": seconds},
        "text_feedback": f"mean tour length / sqrt(n) = {mean:.5f} over {len(INSTANCES)} instances "
                         f"(about 0.7124 is optimal for large n); solve took {seconds:.3f} s in all",
    }
