import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    v = float(module.value())
    if v < 0:
        return {"combined_score": 0.0, "correct": False, "error": f"value() must not be negative, got {v}"}
    return {"combined_score": v, "correct": True}
