"""A ShinkaEvolve-style script: --program_path P --results_dir D writes metrics.json and correct.json."""

import argparse
import importlib.util
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--program_path", required=True)
parser.add_argument("--results_dir", required=True)
args = parser.parse_args()

spec = importlib.util.spec_from_file_location("candidate", args.program_path)
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
    v = float(module.value())
    correct, error = True, ""
except Exception as exc:  # reported through correct.json
    v, correct, error = 0.0, False, str(exc)
os.makedirs(args.results_dir, exist_ok=True)
with open(os.path.join(args.results_dir, "metrics.json"), "w") as f:
    json.dump({"combined_score": -abs(v - 3.0), "public": {"value": v}, "private": {},
               "text_feedback": f"value {v}"}, f)
with open(os.path.join(args.results_dir, "correct.json"), "w") as f:
    json.dump({"correct": correct, "error": error}, f)
