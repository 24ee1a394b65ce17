"""One OpenEvolve run for bench/compare_peers.py, in OpenEvolve's venv: argv[1] is a JSON object of its settings
(candidates, slots, base_url, initial, evaluate, results_dir, summary, timeout_s, description); writes a JSON
summary of its candidates."""

import asyncio
import json
import sys
from pathlib import Path

import yaml
from openevolve import OpenEvolve
from openevolve.config import load_config

a = json.loads(sys.argv[1])
config = {
    "max_iterations": a["candidates"],
    "log_level": "WARNING",
    "random_seed": 42,
    "diff_based_evolution": True,
    "llm": {"api_base": a["base_url"], "api_key": "none", "models": [{"name": "fake", "weight": 1.0}],
            "temperature": 0.7, "max_tokens": 4096, "timeout": 60, "retries": 3, "retry_delay": 5},
    "prompt": {"system_message": a["description"]},
    "database": {"num_islands": 1, "in_memory": True, "embedding_model": None},
    "evaluator": {"timeout": a["timeout_s"], "cascade_evaluation": False, "parallel_evaluations": a["slots"],
                  "use_llm_feedback": False},
}
path = Path(a["results_dir"]) / "config.yaml"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(yaml.safe_dump(config))
oe = OpenEvolve(a["initial"], a["evaluate"], load_config(str(path)), output_dir=a["results_dir"])
best = asyncio.run(oe.run(iterations=a["candidates"]))
programs = list(oe.database.programs.values())
children = [p for p in programs if p.parent_id]
Path(a["summary"]).write_text(json.dumps({
    "candidates": len(children),
    "correct": sum(1 for p in children if p.metrics.get("validity") == 1.0),
    "best": best.metrics.get("combined_score") if best else None,
}))
