"""Shaped like an OpenEvolve evaluator: evaluate() returns an object with metrics and artifacts."""

import importlib.util
from dataclasses import dataclass, field


@dataclass
class EvaluationResult:
    metrics: dict
    artifacts: dict = field(default_factory=dict)


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    v = module.value()
    return EvaluationResult(metrics={"combined_score": -abs(v - 3.0), "value": v},
                            artifacts={"note": f"value() returned {v}"})
