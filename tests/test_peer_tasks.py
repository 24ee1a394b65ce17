"""Task folders written for ShinkaEvolve and OpenEvolve run unchanged, with their settings, and with neither
framework installed: through `evomcp run`, over MCP (the real client, in memory) and through the tools."""

import importlib.util
import json
import shutil

import pytest
from mcp import Client

from conftest import DATA
from evomcp.evaluators.task import TaskError, resolve_task
from evomcp.server.app import build_server
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from test_cli import evomcp
from test_mcp_memory import call_err, call_ok

SHINKA, OPENEVOLVE, NO_MARKERS = DATA / "shinka_task", DATA / "openevolve_cascade", DATA / "no_markers"
RUN_SCRIPT_MESSAGE = "You tune value() so that it returns the target exactly. (The run script's system message.)"
CONFIG_MESSAGE = "You choose STEPS and WIDTH. (The config's system message.)"
# The fixture's own arithmetic: value() = 0.5 * 3.0 against the target 3.0 of helper.py
SHINKA_SEED = -abs(0.5 * 3.0 - 3.0)
# OpenEvolve's rule for metrics without combined_score: stage 1 {runs, quick} merged with stage 2 {accuracy,
# speed, complexity}, averaged without the feature dimension `complexity`
OPENEVOLVE_SEED = (1.0 + 3 / 10 + 4 / 8 + 1.0) / 4


def with_program(code: str, **values) -> str:
    for name, value in values.items():
        code = code.replace(f"{name} = ", f"{name} = {value!r}  # was ", 1)
    return code


def test_the_peers_are_not_importable_in_the_server():
    """The stand-ins live on the sandbox's sys.path only (unless a real peer is installed here)."""
    for name in ("shinka", "openevolve"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "peer_compat" not in (spec.origin or "")


def test_settings_are_read_from_the_run_script_and_the_yaml(tmp_path):
    task = resolve_task(str(SHINKA))
    assert task.framework == "shinka" and task.kind == "script"
    assert task.description == RUN_SCRIPT_MESSAGE and task.timeout_s == 20
    assert task.run_defaults == {"patch_mix": {"diff": 0.7, "full": 0.3}}
    assert any(n.startswith("run_evo.py: task_sys_msg") for n in task.notes)
    # without the run script, the YAML's own message and job time apply
    folder = shutil.copytree(SHINKA, tmp_path / "yaml_only")
    (folder / "run_evo.py").unlink()
    task = resolve_task(str(folder))
    assert task.description == "You tune value(). (The YAML's system message.)" and task.timeout_s == 15
    # task.toml wins over both
    (folder / "task.toml").write_text('description = "mine"\ntimeout_s = 7\n')
    task = resolve_task(str(folder))
    assert (task.description, task.timeout_s) == ("mine", 7)


def test_settings_are_read_from_config_yaml(tmp_path):
    task = resolve_task(str(OPENEVOLVE))
    assert task.framework == "openevolve" and task.seed_name == "initial_program.py"
    assert task.description == CONFIG_MESSAGE and task.timeout_s == 3
    assert task.cascade_thresholds == [0.5] and task.cascade_stages == 2
    assert task.fitness == "average" and task.feature_dimensions == ["complexity"]
    assert task.run_defaults == {"patch_mix": {"full": 1.0}, "max_code_bytes": 5000}
    # no config: OpenEvolve's defaults, not README.md, which holds instructions for running OpenEvolve
    folder = shutil.copytree(OPENEVOLVE, tmp_path / "no_config")
    (folder / "config.yaml").unlink()
    (folder / "README.md").write_text("Run openevolve-run.py on this folder.")
    task = resolve_task(str(folder))
    assert task.timeout_s == 300 and task.cascade_thresholds == [0.5, 0.75, 0.9]
    assert task.description == "Run openevolve-run.py on this folder."  # no system message to prefer


def test_hostile_settings_files_cannot_stall_or_break_a_start(tmp_path):
    """Task folders are untrusted too: an alias bomb, a run script nested past the parser, absurd numbers."""
    import time

    bomb = shutil.copytree(OPENEVOLVE, tmp_path / "bomb")
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for k, name in enumerate("bcdefgh"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{'abcdefgh'[k]}"] * 9) + "]")
    lines += ["database:", "  feature_dimensions: *h", "evaluator:", "  timeout: .inf"]
    (bomb / "config.yaml").write_text("\n".join(lines) + "\n")
    began = time.monotonic()
    with pytest.raises(TaskError, match="too many YAML aliases") as refused:  # refused at once, with the reason
        resolve_task(str(bomb))
    assert time.monotonic() - began < 5 and len(str(refused.value)) < 2000
    (bomb / "config.yaml").write_text("evaluator:\n  timeout: .inf\n")
    assert resolve_task(str(bomb)).timeout_s == 300  # OpenEvolve's default, not inf

    deep = shutil.copytree(SHINKA, tmp_path / "deep")
    (deep / "run_evo.py").write_text("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
                                     "job = LocalJobConfig(time='" + "9" * 5000 + ":00:00')\n")
    task = resolve_task(str(deep))  # what cannot be read is a note; the YAML's settings still apply
    assert task.timeout_s == 15


async def test_shinka_task_runs_with_its_framework_helper_and_sibling_module(ws):
    status = await runs.start_run(ws, str(SHINKA), config={"novelty": False})
    assert status.best.combined_score == SHINKA_SEED and status.time_limit_s == 20
    assert status.run.config["patch_mix"] == {"diff": 0.7, "full": 0.3}
    seed = await ws.program(status.run.run_id, status.best.id)
    assert seed.public_metrics["mean"] == 1.5 and seed.public_metrics["num_valid_runs"] == 3
    assert "execution_time_mean" in seed.public_metrics and seed.text_feedback == "mean value 1.5 over 3 runs"
    sampled = await steps.sample_parent(ws, status.run.run_id)
    assert RUN_SCRIPT_MESSAGE in sampled.brief and "importable (tried)" in sampled.brief


async def test_openevolve_cascade_cuts_early_and_averages(ws):
    status = await runs.start_run(ws, str(OPENEVOLVE), config={"novelty": False})
    run_id, seed_id = status.run.run_id, status.best.id
    assert status.best.combined_score == OPENEVOLVE_SEED and status.time_limit_s == 3
    assert "offline_operator" in status.notes and "only nudge the integers" in status.notes["offline_operator"]
    assert "config.yaml: prompt.system_message" in status.notes["settings"]
    seed = await ws.program(run_id, seed_id)
    assert seed.public_metrics["accuracy"] == 0.5 and "4 steps" not in (seed.text_feedback or "")
    assert "shape: 3 steps of width 4" in seed.text_feedback  # artifacts reach the brief as feedback
    code = seed.code
    # stage 1 below its threshold: stage 2 never runs
    cut = await steps.propose_candidate(ws, run_id, seed_id, code=with_program(code, STEPS=0))
    assert cut.program.combined_score == 0.0 and "accuracy" not in cut.program.public_metrics
    assert "stopped after stage 1" in (await ws.program(run_id, cut.program.id)).text_feedback
    # stage 2 past its own time limit: stage 1's metrics are kept, as OpenEvolve keeps them
    slow = await steps.propose_candidate(ws, run_id, seed_id, code=with_program(code, WIDTH=-1))
    assert slow.program.status == "evaluated"
    assert slow.program.combined_score == (1.0 + 3 / 10 + 0.0 + 1.0) / 4  # runs, quick, stage2_passed, timeout
    better = await steps.propose_candidate(ws, run_id, seed_id, code=with_program(code, STEPS=5, WIDTH=8))
    assert better.program.combined_score == (1.0 + 5 / 10 + 8 / 8 + 1.0) / 4 > OPENEVOLVE_SEED


async def test_a_program_without_markers_is_refused_or_wrapped_as_told(ws, tmp_path):
    with pytest.raises(EvoError, match=r"has no EVOLVE-BLOCK.*evolve = \"generate\""):
        await runs.start_run(ws, str(NO_MARKERS))
    folder = shutil.copytree(NO_MARKERS, tmp_path / "wrapped")
    (folder / "task.toml").write_text('evolve = "generate"\n')
    status = await runs.start_run(ws, str(folder), config={"novelty": False})
    assert status.best.combined_score == 1.125 and "the definition of generate is the block" in status.notes["settings"]
    seed = await ws.program(status.run.run_id, status.best.id)
    assert seed.code.index("# EVOLVE-BLOCK-START") < seed.code.index("def generate") < \
        seed.code.index("# EVOLVE-BLOCK-END") < seed.code.index("def run_experiment")


async def test_missing_dependencies_and_script_errors_say_what_they_are(ws, tmp_path):
    seed = (SHINKA / "initial.py").read_text()
    folder = tmp_path / "needs"
    folder.mkdir()
    (folder / "initial.py").write_text(seed)
    (folder / "evaluate.py").write_text("import numpy\nimport evomcp_no_such_package\n")
    with pytest.raises(EvoError, match=r"evaluate.py imports evomcp_no_such_package, which is not installed .*"
                                       r"-m pip install evomcp_no_such_package"):
        await runs.start_run(ws, str(folder))
    # imported only when it runs: the seed's failure names it, with the install command
    (folder / "evaluate.py").write_text("def main():\n    import evomcp_no_such_package\n\nmain()\n")
    with pytest.raises(EvoError, match=r"evaluate.py failed: ModuleNotFoundError: No module named "
                                       r"'evomcp_no_such_package' \(.*pip install evomcp_no_such_package"):
        await runs.start_run(ws, str(folder))
    (folder / "evaluate.py").write_text("raise ValueError('the data file is missing')\n")
    with pytest.raises(EvoError, match=r"evaluate.py failed: ValueError: the data file is missing\. "
                                       r"Fix initial.py or evaluate.py"):
        await runs.start_run(ws, str(folder))
    # an OpenEvolve folder's refusals name its own files
    (folder / "evaluate.py").unlink()
    (folder / "initial.py").rename(folder / "initial_program.py")
    (folder / "evaluator.py").write_text("def evaluate(p):\n    raise RuntimeError('no')\n")
    with pytest.raises(EvoError, match="Fix initial_program.py or evaluator.py"):
        await runs.start_run(ws, str(folder))


async def test_the_stand_ins_are_read_only_in_the_sandbox(ws, tmp_path):
    folder = tmp_path / "writer"
    folder.mkdir()
    (folder / "initial_program.py").write_text("# EVOLVE-BLOCK-START\nx = 1.0\n# EVOLVE-BLOCK-END\n")
    (folder / "evaluator.py").write_text(
        "import os\nimport openevolve\n\ndef evaluate(p):\n"
        "    try:\n        open(os.path.join(os.path.dirname(openevolve.__file__), 'planted.py'), 'w')\n"
        "        return {'combined_score': 1.0, 'wrote': 1}\n"
        "    except OSError as exc:\n        return {'combined_score': 0.0, 'refused': str(exc)}\n")
    status = await runs.start_run(ws, str(folder), config={"novelty": False})
    seed = await ws.program(status.run.run_id, status.best.id)
    assert status.best.combined_score == 0.0 and "refused" in seed.public_metrics
    assert not list(DATA.parent.parent.glob("evaluators/peer_compat/openevolve/planted.py"))


def test_cli_runs_both_peers_folders_with_their_notes(tmp_path):
    db = str(tmp_path / "peers.db")
    out = evomcp("run", str(SHINKA), "--budget", "12", "--seed", "1", "--db", db)
    assert out.returncode == 0, out.stderr
    assert "note: run_evo.py: task_sys_msg" in out.stderr
    status = json.loads(evomcp("show", "1", "--db", db).stdout)
    assert status["best"]["combined_score"] > SHINKA_SEED  # perturb tunes SCALE, as a model would
    assert status["time_limit_s"] == 20
    out = evomcp("run", str(OPENEVOLVE), "--budget", "6", "--seed", "2", "--db", db)
    assert out.returncode == 0, out.stderr
    assert "note: the offline operator perturb can only nudge the integers" in out.stderr
    status = json.loads(evomcp("show", "2", "--db", db).stdout)
    assert status["best"]["combined_score"] >= OPENEVOLVE_SEED and status["run"]["config"]["max_code_bytes"] == 5000


async def test_peer_folders_over_mcp(ws, tmp_path):
    async with Client(build_server(ws)) as client:
        shinka = await call_ok(client, "start_run", {"task": str(SHINKA), "config": {"novelty": False}})
        assert shinka["best"]["combined_score"] == SHINKA_SEED and "run_evo.py" in shinka["notes"]["settings"]
        sampled = await call_ok(client, "sample_parent", {"run_id": shinka["run"]["run_id"]})
        assert RUN_SCRIPT_MESSAGE in sampled["brief"]
        oe = await call_ok(client, "start_run", {"task": str(OPENEVOLVE), "config": {"novelty": False}})
        assert oe["best"]["combined_score"] == OPENEVOLVE_SEED and "offline_operator" in oe["notes"]
        run_id = oe["run"]["run_id"]
        sampled = await call_ok(client, "sample_parent", {"run_id": run_id})
        assert CONFIG_MESSAGE in sampled["brief"] and "shape: 3 steps of width 4" in sampled["brief"]
        cut = await call_ok(client, "propose_candidate", {
            "run_id": run_id, "parent_id": sampled["parent"]["id"], "ticket": sampled["ticket"],
            "code": with_program(sampled["parent"]["code"], STEPS=0)})
        assert cut["program"]["combined_score"] == 0.0
        message = await call_err(client, "start_run", {"task": str(NO_MARKERS)})
        assert "has no EVOLVE-BLOCK" in message and 'evolve = "generate"' in message
