"""Shaped like an OpenEvolve evaluator: staged, metrics without combined_score, artifacts."""

import importlib.util
import time

from openevolve.evaluation_result import EvaluationResult


def _settings(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run()


def evaluate_stage1(program_path):
    steps, _ = _settings(program_path)
    return {"runs": 1.0 if steps > 0 else 0.0, "quick": min(1.0, max(steps, 0) / 10)}


def evaluate_stage2(program_path):
    steps, width = _settings(program_path)
    if width < 0:
        time.sleep(60)  # past the stage's time limit
    return EvaluationResult(metrics={"accuracy": width / 8, "speed": 1.0, "complexity": 123.0},
                            artifacts={"shape": f"{steps} steps of width {width}"})


def evaluate(program_path):
    return evaluate_stage2(program_path)
