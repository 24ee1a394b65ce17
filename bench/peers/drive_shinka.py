"""One ShinkaEvolve run for bench/compare_peers.py, in ShinkaEvolve's venv: argv[1] is a JSON object of its
settings (candidates, slots, base_url, initial, evaluate, results_dir, summary, timeout_s, description); writes a
JSON summary of what its archive holds."""

import json
import sqlite3
import sys
from pathlib import Path

from shinka.core import EvolutionConfig, ShinkaEvolveRunner
from shinka.database import DatabaseConfig
from shinka.launch import LocalJobConfig

a = json.loads(sys.argv[1])
evo = EvolutionConfig(
    task_sys_msg=a["description"],
    patch_types=["diff", "full", "cross"],
    patch_type_probs=[0.6, 0.3, 0.1],
    num_generations=a["candidates"] + 1,  # generation 0 is the seed
    language="python",
    llm_models=["local/fake@" + a["base_url"]],
    llm_kwargs={"temperatures": [0.0, 0.5, 1.0], "max_tokens": 4096},
    meta_rec_interval=None,
    meta_llm_models=None,
    novelty_llm_models=None,
    embedding_model=None,
    init_program_path=a["initial"],
    results_dir=a["results_dir"],
)
t = int(a["timeout_s"])
job = LocalJobConfig(eval_program_path=a["evaluate"], time="%02d:%02d:%02d" % (t // 3600, t // 60 % 60, t % 60))
db = DatabaseConfig(num_islands=1, archive_size=40)  # the runner puts programs.sqlite in results_dir
runner = ShinkaEvolveRunner(evo, job, db, verbose=False, max_evaluation_jobs=a["slots"],
                            max_proposal_jobs=a["slots"], max_db_workers=2)
runner.run()

# what it settled on after clamping to the machine's cores, and what its archive holds
summary = {"max_evaluation_jobs": runner.max_evaluation_jobs, "max_proposal_jobs": runner.max_proposal_jobs}
con = sqlite3.connect(Path(a["results_dir"]) / "programs.sqlite")
rows = con.execute("SELECT generation, correct, combined_score FROM programs").fetchall()
con.close()
children = [r for r in rows if r[0] and r[0] > 0]
summary.update(candidates=len(children), correct=sum(1 for r in children if r[1]),
               best=max((r[2] for r in rows if r[1] and r[2] is not None), default=None))
Path(a["summary"]).write_text(json.dumps(summary))
