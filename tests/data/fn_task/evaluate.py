"""evaluate(program_path) -> dict: the OpenEvolve-style contract."""

import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    v = float(module.value())
    score = -abs(v - 3.0)
    return {"combined_score": score, "correct": True, "text_feedback": f"value {v}",
            "public": {"value": v}, "private": {"secret_target": 3.0}}
