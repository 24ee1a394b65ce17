"""`run_shinka_eval`: run a program's experiment function a number of times and write the results the way
ShinkaEvolve's evaluation scripts do (`metrics.json` and `correct.json` in the results folder).

Written for evomcp from ShinkaEvolve's documented behaviour: the experiment runs `num_runs` times (with
`get_experiment_kwargs(i)`, else `seed=i+1`), each result optionally validated, the list aggregated into
metrics (plus the mean and standard deviation of the run times and the validation counts); any exception
gives the default error metrics and `correct: false` with the exception's message. `extra_data` in the
metrics is pickled to `extra.pkl` (and plotted with `plotting_fn`). Early stopping is not provided here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import numpy as np

DEFAULT_METRICS_ON_ERROR: dict[str, Any] = {
    "combined_score": 0.0,
    "execution_time_mean": 0.0,
    "execution_time_std": 0.0,
    "num_successful_runs": 0,
    "num_valid_runs": 0,
    "num_invalid_runs": 0,
    "all_validation_errors": [],
}


def load_program(program_path: str) -> Any:
    """The program at `program_path`, imported as a module named `program`."""
    spec = importlib.util.spec_from_file_location("program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Could not load the program at {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _experiment(module: Any, name: str, program_path: str) -> Callable[..., Any]:
    if not hasattr(module, name):
        raise AttributeError(f"Experiment function '{name}' not found in {program_path}")
    return getattr(module, name)


def _one_run(program_path: str, name: str, kwargs: dict[str, Any]) -> tuple[Any, float]:
    """One run in a worker process: a fresh import of the program, then its experiment function."""
    function = _experiment(load_program(program_path), name, program_path)
    started = time.perf_counter()
    result = function(**kwargs)
    return result, time.perf_counter() - started


def save_json_results(results_dir: str, metrics: dict[str, Any], correct: bool, error: str | None = None,
                      verbose: bool = True) -> None:
    """Write `correct.json` ({"correct", "error"}) and `metrics.json` into `results_dir`."""
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "correct.json"), "w") as f:
        json.dump({"correct": correct, "error": error}, f, indent=4)
    with open(os.path.join(results_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=4)
    if verbose:
        print(f"Results written to {results_dir} (correct.json, metrics.json)")


def _save_extra(results_dir: str, extra: Any, plotting_fn: Callable[[Any], list] | None) -> None:
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "extra.pkl"), "wb") as f:
        pickle.dump(extra, f)
    if plotting_fn is None:
        return
    plots = os.path.join(results_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    try:
        import matplotlib.pyplot as plt

        for item, title in plotting_fn(extra):
            if hasattr(item, "savefig"):
                item.savefig(os.path.join(plots, f"{title}.png"), bbox_inches="tight", dpi=150)
                item.savefig(os.path.join(plots, f"{title}.pdf"), bbox_inches="tight")
                plt.close(item)
            else:  # an animation
                item.save(os.path.join(plots, f"{title}.gif"), writer="pillow", fps=30)
    except Exception as exc:  # plots are a bonus: their failure changes no metric
        print(f"Error generating plots: {exc}")


def run_shinka_eval(
    program_path: str,
    results_dir: str,
    experiment_fn_name: str,
    num_runs: int,
    get_experiment_kwargs: Callable[[int], dict[str, Any]] | None = None,
    aggregate_metrics_fn: Callable[[list[Any]], dict[str, Any]] | None = None,
    validate_fn: Callable[[Any], tuple[bool, str | None]] | None = None,
    plotting_fn: Callable[[Any], list] | None = None,
    default_metrics_on_error: dict[str, Any] | None = None,
    early_stop_method: Any = None,
    early_stop_threshold: float | None = None,
    early_stop_score_fn: Callable[[Any], float] | None = None,
    early_stop_kwargs: dict[str, Any] | None = None,
    run_workers: int = 1,
    max_workers_cap: int | None = None,
    verbose: bool | None = None,
) -> tuple[dict[str, Any], bool, str | None]:
    """Run the experiment, validate and aggregate, write the results; returns (metrics, correct, first error)."""
    if verbose is None:
        verbose = os.environ.get("SHINKA_EVAL_VERBOSE", "1") != "0"
    if early_stop_method is not None:
        raise NotImplementedError(
            "early stopping (early_stop_method) is not provided by evomcp's stand-in for ShinkaEvolve; "
            "install ShinkaEvolve (pip install shinka-evolve) where evomcp runs, or drop early_stop_method")
    if run_workers < 1:
        raise ValueError("run_workers must be >= 1")
    if max_workers_cap is not None and max_workers_cap < 1:
        raise ValueError("max_workers_cap must be >= 1 when provided")
    workers = min(run_workers, max_workers_cap or run_workers, max(num_runs, 1))
    error_defaults = dict(default_metrics_on_error or DEFAULT_METRICS_ON_ERROR)
    kwargs_of = get_experiment_kwargs or (lambda i: {"seed": i + 1})

    results: list[Any] = []
    times: list[float] = []
    correct, first_error = True, None
    errors: list[str] = []
    valid = invalid = 0
    try:
        function = _experiment(load_program(program_path), experiment_fn_name, program_path)
        if num_runs > 1 and workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_one_run, program_path, experiment_fn_name, kwargs_of(i))
                           for i in range(num_runs)]
                runs = [future.result() for future in futures]  # in run order, whatever finishes first
        else:
            runs = []
            for i in range(num_runs):
                if verbose:
                    print(f"Run {i + 1}/{num_runs} of {experiment_fn_name}")
                started = time.perf_counter()
                result = function(**kwargs_of(i))
                runs.append((result, time.perf_counter() - started))
        for result, seconds in runs:
            results.append(result)
            times.append(seconds)
            if validate_fn is None:
                continue
            ok, message = validate_fn(result)
            if ok:
                valid += 1
                continue
            invalid += 1
            correct = False
            if message:
                first_error = first_error or f"Validation failed: {message}"
                if message not in errors:
                    errors.append(message)

        if aggregate_metrics_fn is not None:
            metrics = aggregate_metrics_fn(results)
        else:
            metrics = {"num_successful_runs": len(results),
                       "first_run_result_type": str(type(results[0])) if results else "N/A",
                       "raw_results_preview": str(results[:2]) if results else "N/A"}
        metrics["execution_time_mean"] = float(np.mean(times)) if times else 0.0
        metrics["execution_time_std"] = float(np.std(times)) if times else 0.0
        if validate_fn is not None:
            metrics.update(num_valid_runs=valid, num_invalid_runs=invalid, all_validation_errors=errors)
        score = metrics.get("combined_score")
        if isinstance(score, (int, float)) and not math.isfinite(score):
            correct = False
            first_error = first_error or (f"combined_score is NaN" if math.isnan(score) else
                                          f"combined_score is inf ({score})")
    except Exception as exc:
        print(f"Evaluation error: {exc}")
        metrics = {key: error_defaults.get(key, value) for key, value in DEFAULT_METRICS_ON_ERROR.items()}
        if validate_fn is not None:
            metrics.setdefault("num_valid_runs", 0)
            metrics.setdefault("num_invalid_runs", len(results))
            metrics.setdefault("all_validation_errors", [str(exc)])
        first_error, correct = str(exc), False

    if "extra_data" in metrics:
        _save_extra(results_dir, metrics.pop("extra_data"), plotting_fn)
    save_json_results(results_dir, metrics, correct, first_error, verbose=verbose)
    return metrics, correct, first_error
