"""Numba kernels of the trusted scorers against their vectorised numpy versions.

Run: .venv/bin/python bench/kernels.py. Inputs are valid (so every pair or triple is visited);
the first call of each Numba kernel (a compile, or a load from the on-disk cache) is timed
separately, then medians over repeated calls are compared.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from numba import njit

from evomcp.evaluators.tasks.circle_packing import kernel as circle_kernel
from evomcp.evaluators.tasks.heilbronn_triangle import kernel as triangle_kernel
from evomcp.evaluators.tasks.min_max_distance import kernel as distance_kernel


def valid_packing(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random centers well inside the square, radii small enough that no pair overlaps."""
    centers = 0.05 + 0.9 * rng.random((n, 2))
    d = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1)) + np.eye(n) * 9
    return centers, np.full(n, 0.49 * d.min())


def first_call_us(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e6


def median_us(fn, *args, budget_s: float = 0.3, max_reps: int = 2000) -> float:
    times, spent = [], 0.0
    while spent < budget_s and len(times) < max_reps:
        start = time.perf_counter()
        fn(*args)
        elapsed = time.perf_counter() - start
        times.append(elapsed * 1e6)
        spent += elapsed
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for n in (26, 1000):
        cases.append(("check_circles", n, circle_kernel.check_circles, circle_kernel.check_circles_numpy, valid_packing(n, rng)))
    for n in (11, 60):
        cases.append(("min_triangle_area", n, triangle_kernel.min_triangle_area, triangle_kernel.min_triangle_area_numpy,
                      (rng.random((n, 2)),)))
    for n in (16, 1000):
        cases.append(("distance_extremes", n, distance_kernel.distance_extremes, distance_kernel.distance_extremes_numpy,
                      (rng.random((n, 2)),)))

    print("first call: the cached kernel's first call in this process (cache load, or compile if no cache);")
    print("compile: the same function compiled afresh without the cache. Medians exclude both.\n")
    header = f"{'kernel':18} {'n':>5} {'first call ms':>14} {'compile ms':>11} {'numba µs':>10} {'numpy µs':>10} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    seen = set()
    for name, n, fast, slow, args in cases:
        first = compile_ms = "-"
        if name not in seen:
            seen.add(name)
            first = f"{first_call_us(fast, *args) / 1e3:.1f}"
            compile_ms = f"{first_call_us(njit(nogil=True)(fast.py_func), *args) / 1e3:.0f}"
        assert np.allclose(fast(*args), slow(*args), rtol=1e-12), name
        assert name != "check_circles" or fast(*args)[0] == circle_kernel.OK  # valid: the whole loop ran
        numba_us = median_us(fast, *args)
        numpy_us = median_us(slow, *args)
        print(f"{name:18} {n:>5} {first:>14} {compile_ms:>11} {numba_us:>10.2f} {numpy_us:>10.1f} "
              f"{numpy_us / numba_us:>7.1f}x")


if __name__ == "__main__":
    main()
