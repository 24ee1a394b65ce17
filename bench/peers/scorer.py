import importlib.util
import itertools
import os
import sys  # noqa: F401 - eval_loop.py uses it
import time

import numpy as np

N_CIRCLES = 26
_loaded = itertools.count()


def log_evaluation(started, correct):
    """One line per evaluation (start, end on the monotonic clock, validity) where the bench asks: counts them."""
    path = os.environ.get("BENCH_EVAL_LOG")
    if path:
        try:
            with open(path, "a") as f:
                f.write(f"{started!r} {time.monotonic()!r} {int(correct)}\n")
        except OSError:
            pass


def score_program(program_path):
    """(combined_score, correct, error) of the candidate: run it, check it at zero tolerance."""
    try:
        spec = importlib.util.spec_from_file_location(f"candidate_{next(_loaded)}", program_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        centers, radii = module.run_packing()
        centers = np.asarray(centers, dtype=float)
        radii = np.asarray(radii, dtype=float)
        if centers.shape != (N_CIRCLES, 2) or radii.shape != (N_CIRCLES,):
            return 0.0, False, f"shapes {centers.shape} and {radii.shape}"
        if not (np.isfinite(centers).all() and np.isfinite(radii).all()) or (radii < 0).any():
            return 0.0, False, "non-finite or negative values"
        x, y = centers[:, 0], centers[:, 1]
        if ((radii > x) | (radii > 1 - x) | (radii > y) | (radii > 1 - y)).any():
            return 0.0, False, "a circle leaves the unit square"
        gaps = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1))
        upper = np.triu_indices(N_CIRCLES, 1)
        if ((radii[:, None] + radii[None, :])[upper] > gaps[upper]).any():
            return 0.0, False, "two circles overlap"
        return float(radii.sum()), True, None
    except Exception as exc:  # the candidate's fault: scored as invalid
        return 0.0, False, f"{type(exc).__name__}: {exc}"
