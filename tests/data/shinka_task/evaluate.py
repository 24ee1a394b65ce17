"""Shaped like a ShinkaEvolve evaluation script: its framework's helper and a sibling module."""

import argparse
import math

from helper import TARGET, distance
from shinka.core import run_shinka_eval


def check(result):
    ok = isinstance(result, float) and math.isfinite(result)
    return ok, None if ok else f"value() gave {result!r}, expected a finite float"


def summarise(results):
    mean = sum(results) / len(results)
    return {"combined_score": -distance(mean), "public": {"mean": mean}, "private": {"target": TARGET},
            "text_feedback": f"mean value {mean} over {len(results)} runs"}


def main(program_path, results_dir):
    run_shinka_eval(program_path=program_path, results_dir=results_dir, experiment_fn_name="run_experiment",
                    num_runs=3, get_experiment_kwargs=lambda i: {"seed": 10 + i}, validate_fn=check,
                    aggregate_metrics_fn=summarise)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--program_path", default="initial.py")
    parser.add_argument("--results_dir", default="results")
    args = parser.parse_args()
    main(args.program_path, args.results_dir)
