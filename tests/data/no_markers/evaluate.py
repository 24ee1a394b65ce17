import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = module.run_experiment([1, 2, 3, 4])
    return {"combined_score": sum(values) / len(values), "correct": True}
