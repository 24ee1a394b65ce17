"""Split-contract task directories: the candidate's entry function returns data inside its sandbox and
the task's score(data) runs in a separate sandboxed child that never loads the candidate's code. A
candidate cannot forge its score, and every run says whether its scores are trusted."""

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evomcp.evaluators.task import TaskError, resolve_task
from evomcp.server.report import build_report
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.trust import NOTE
from evomcp.tools.workspace import open_workspace

from conftest import DATA

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tasks" / "thomson_24"

# A small split-contract task: the score is minus the squared distance of three numbers to a target
# that only evaluate.py knows. score() also reports what its own process sees, and echoes the data.
EVALUATE = '''
import math
import os
import sys

ENTRY = "run"
TARGET = [0.25, 0.5, 0.75]


def score(data):
    seen = {"data": data, "cwd_files": sorted(os.listdir(".")),
            "candidate_loaded": any(name == "candidate" or name.startswith("candidate.") for name in sys.modules)}
    if not isinstance(data, list) or len(data) != 3:
        return {"combined_score": 0.0, "correct": False, "error": "run() must return a list of 3 numbers",
                "public": seen}
    values = []
    for x in data:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return {"combined_score": 0.0, "correct": False, "error": f"{x!r} is not a number", "public": seen}
        try:
            value = float(x)
        except OverflowError:
            return {"combined_score": 0.0, "correct": False, "error": "a number too large", "public": seen}
        if not math.isfinite(value):
            return {"combined_score": 0.0, "correct": False, "error": f"{value!r} is not finite", "public": seen}
        values.append(value)
    return {"combined_score": -sum((v - t) ** 2 for v, t in zip(values, TARGET)), "public": seen}
'''

SEED = "# EVOLVE-BLOCK-START\ndef run():\n    return [0.0, 0.0, 0.0]\n# EVOLVE-BLOCK-END\n"


def block(body: str) -> str:
    return "# EVOLVE-BLOCK-START\n" + textwrap.dedent(body).strip("\n") + "\n# EVOLVE-BLOCK-END\n"


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_dir(root: Path, evaluate: str = EVALUATE, seed: str = SEED, toml: str = "timeout_s = 5\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "initial.py").write_text(seed)
    (root / "evaluate.py").write_text(evaluate)
    (root / "task.toml").write_text(toml)
    return root


def expected(task: Path, data):
    """What the task's score() says about `data`, computed here, outside any sandbox."""
    return load(f"expected_{abs(hash(str(task)))}", task / "evaluate.py").score(data)


NO_NOVELTY = {"num_islands": 1, "novelty": False}


async def test_example_task_evolves_through_the_tools(ws):
    task = resolve_task(str(EXAMPLE))
    assert task.kind == "split" and task.entry == "place_points" and task.trusted_scores
    status = await runs.start_run(ws, str(EXAMPLE), config=NO_NOVELTY)
    assert status.scoring == "trusted" and "split contract" in status.scoring_detail
    run_id, seed = status.run.run_id, status.best
    # exactly what score() computes on the data place_points() returns, the data passed as JSON
    seed_data = json.loads(json.dumps(load("thomson_seed", EXAMPLE / "initial.py").place_points()))
    assert seed.correct and seed.combined_score == expected(EXAMPLE, seed_data)["combined_score"]
    assert 0.99 < seed.combined_score < 1.0
    code = (await ws.program(run_id, seed.id)).code
    better = code.replace("STEPS = 30", "STEPS = 200").replace("STEP_SIZE = 0.02", "STEP_SIZE = 0.2")
    result = await steps.propose_candidate(ws, run_id, seed.id, code=better)
    assert result.is_new_best and result.program.correct
    program = await ws.program(run_id, result.program.id)
    namespace: dict = {}
    exec(compile(better, "better.py", "exec"), namespace)
    assert program.combined_score == expected(EXAMPLE, json.loads(json.dumps(namespace["place_points"]())))[
        "combined_score"]
    assert "energy" in program.text_feedback and program.public_metrics["energy"] > 223.3
    broken = await steps.propose_candidate(ws, run_id, seed.id,
                                           code=code.replace("    return points\n", "    return points[:-1]\n"))
    assert not broken.program.correct and "returned 23 points, expected 24" in broken.program.error
    assert [r.scoring for r in (await runs.list_runs(ws)).runs] == ["trusted"]


def forgeries(original: Path) -> dict[str, tuple[str, object]]:
    """name -> (candidate code, the data score() must be given); the attacker knows where the task lives."""
    evaluate_py = str(original / "evaluate.py")
    return {
        # patching the task's evaluate module (and builtins) in the candidate's own process changes nothing
        "patches the evaluate module": (block(f"""
            import builtins, importlib.util, math, sys, types
            def run():
                try:  # the task folder, where the sandbox lets it be seen at all
                    spec = importlib.util.spec_from_file_location("task_evaluate", {evaluate_py!r})
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                except OSError:
                    module = types.ModuleType("task_evaluate")
                module.score = lambda data: {{"combined_score": 1e9, "correct": True}}
                sys.modules["task_evaluate"] = sys.modules["evaluate"] = module
                builtins.sum = lambda *args, **kwargs: 0.0
                math.isfinite = lambda x: True
                return [0.0, 0.0, 0.0]
        """), [0.0, 0.0, 0.0]),
        # a result file of its own, shaped like metrics, plus script-contract files: only data to score()
        "writes a forged result file": (block("""
            import json, os
            def run():
                forged = {"combined_score": 1e9, "correct": True}
                with open("result.json", "w") as f:
                    json.dump({"ok": True, "value": forged}, f)
                os.makedirs("results", exist_ok=True)
                for name in ("results/metrics.json", "metrics.json"):
                    with open(name, "w") as f:
                        json.dump(forged, f)
                with open("results/correct.json", "w") as f:
                    json.dump({"correct": True}, f)
                os._exit(0)
        """), {"combined_score": 1e9, "correct": True}),
        "returns metrics instead of data": (block("""
            def run():
                return {"combined_score": 1e9, "correct": True, "public": {"note": "trust me"}}
        """), {"combined_score": 1e9, "correct": True, "public": {"note": "trust me"}}),
        # non-finite numbers: as the sandbox writes them ("nan" text) and as raw JSON tokens it never writes
        "returns NaN and infinity": (block("""
            def run():
                return [float("nan"), float("inf"), 0.5]
        """), ["nan", "inf", 0.5]),
        "writes raw NaN into its result": (block("""
            import os
            def run():
                with open("result.json", "w") as f:
                    f.write('{"ok": true, "value": [NaN, -Infinity, 0.5]}')
                os._exit(0)
        """), [math.nan, -math.inf, 0.5]),
        "returns a huge integer": (block("""
            def run():
                return [10 ** 400, 0.5, 0.75]
        """), [10 ** 400, 0.5, 0.75]),
        # a float subclass that lies about itself: score() sees the number it really is
        "returns a lying float subclass": (block("""
            class Liar(float):
                def __eq__(self, other):
                    return True
                def __float__(self):
                    return 0.25
                def __repr__(self):
                    return "0.25"
            def run():
                return [Liar(5.0), Liar(0.5), Liar(0.75)]
        """), [5.0, 0.5, 0.75]),
        "returns booleans and strings": (block("""
            def run():
                return [True, "0.5", 0.75]
        """), [True, "0.5", 0.75]),
    }


FORGERY_NAMES = list(forgeries(Path("/nowhere")))
FILE_FORGERIES = {"writes a forged result file", "writes raw NaN into its result"}


@pytest.fixture(params=["namespaces", "bwrap"])
async def level_ws(request, db_path, monkeypatch):
    """A workspace whose candidates get the given sandbox level."""
    if request.param == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    monkeypatch.setenv("EVOMCP_BWRAP", "always" if request.param == "bwrap" else "never")
    async with open_workspace(db_path, slots=2) as workspace:
        yield workspace


@pytest.mark.parametrize("name", FORGERY_NAMES)
async def test_a_candidate_cannot_forge_its_score(level_ws, tmp_path, name):
    ws = level_ws
    task = task_dir(tmp_path / "task")
    original = (task / "evaluate.py").read_text()
    status = await runs.start_run(ws, str(task), config=NO_NOVELTY)
    run_id, seed = status.run.run_id, status.best
    assert status.isolation.startswith("bwrap") == (os.environ["EVOMCP_BWRAP"] == "always")
    assert status.scoring == "trusted" and seed.combined_score == expected(task, [0.0, 0.0, 0.0])["combined_score"]
    code, data = forgeries(task)[name]
    result = await steps.propose_candidate(ws, run_id, seed.id, code=code)
    program = await ws.program(run_id, result.program.id)
    want = expected(task, data)
    if program.status == "failed" and name in FILE_FORGERIES:
        # a sandbox that does not take a result file from the candidate at all: no data, no score
        assert program.combined_score is None and not program.correct
    else:
        assert program.status == "evaluated", program.error
        assert program.combined_score == want["combined_score"] and program.combined_score != 1e9
        assert program.correct == want.get("correct", True)
        # score() ran in a process of its own: no candidate module, no program file, the task copy
        seen = program.public_metrics
        assert seen["candidate_loaded"] is False and "task" in seen["cwd_files"]
        assert not any(f.startswith("program") for f in seen["cwd_files"])
    assert (task / "evaluate.py").read_text() == original
    # and an honest candidate still scores exactly right afterwards
    honest = await steps.propose_candidate(ws, run_id, seed.id, code=block("""
        def run():
            return [0.25, 0.5, 0.5]
    """))
    assert honest.program.combined_score == -0.0625 and honest.program.correct
    assert (await runs.get_run_status(ws, run_id)).best.combined_score == -0.0625


async def test_the_candidate_is_not_given_the_task(ws, tmp_path):
    """The entry runs with its program only: no task copy in its work directory, no evaluate module."""
    task = task_dir(tmp_path / "task")
    status = await runs.start_run(ws, str(task), config=NO_NOVELTY)
    probe = block("""
        import os, sys
        def run():
            found = sorted(os.listdir("."))
            modules = [name for name in sys.modules if "evaluate" in name]
            paths = [p for p in sys.path if os.path.exists(os.path.join(p, "evaluate.py"))]
            return ["|".join(found), "|".join(modules), "|".join(paths)]
    """)
    result = await steps.propose_candidate(ws, status.run.run_id, status.best.id, code=probe)
    files, modules, paths = (await ws.program(status.run.run_id, result.program.id)).public_metrics["data"]
    assert "task" not in files.split("|") and "evaluate.py" not in files and modules == "" and paths == ""


FAULTY_SCORES = {
    "score raises": ("def score(data):\n    raise KeyError('oops')\n", "failed on the program's data: KeyError"),
    "score returns a list": ("def score(data):\n    return [1]\n", "score() returned list, expected a dict"),
    "score returns no number": ("def score(data):\n    return {'combined_score': 'high'}\n",
                                "score() of evaluate.py returned no finite number"),
    "score never returns": ("import time\ndef score(data):\n    time.sleep(60)\n", "timeout"),
}


@pytest.mark.parametrize("case", list(FAULTY_SCORES))
async def test_a_faulty_score_function_fails_the_evaluation_with_its_reason(ws, tmp_path, case):
    body, needle = FAULTY_SCORES[case]
    task = task_dir(tmp_path / "task", evaluate='ENTRY = "run"\n' + body, toml="timeout_s = 1\n")
    with pytest.raises(EvoError, match=re.escape(needle)):
        await runs.start_run(ws, str(task))


DETECTION = {
    "ENTRY and score": ('ENTRY = "run"\ndef score(data):\n    return {}\n', ("split", "run")),
    "annotated ENTRY": ('ENTRY: str = "solve"\ndef score(data):\n    return {}\n', ("split", "solve")),
    "split wins over evaluate": ('ENTRY = "run"\ndef evaluate(p):\n    return {}\ndef score(d):\n    return {}\n',
                                 ("split", "run")),
    "a helper named score": ("def score(x):\n    return x\ndef evaluate(p):\n    return {}\n", ("evaluate_fn", None)),
    "ENTRY without score": ('ENTRY = "run"\ndef evaluate(p):\n    return {}\n', "defines no top-level `def score"),
    "async score": ('ENTRY = "run"\nasync def score(data):\n    return {}\n', "not async"),
    "ENTRY not a literal": ('NAME = "run"\nENTRY = NAME\ndef score(data):\n    return {}\n', "string literal"),
    "ENTRY not a name": ('ENTRY = "run it"\ndef score(data):\n    return {}\n', "string literal"),
}


@pytest.mark.parametrize("case", list(DETECTION))
def test_the_contract_is_read_from_the_syntax_tree(tmp_path, case):
    source, want = DETECTION[case]
    task = task_dir(tmp_path / "task", evaluate=source + "raise SystemExit('evaluate.py must not be run')\n")
    if isinstance(want, str):
        with pytest.raises(TaskError, match=re.escape(want)):
            resolve_task(str(task))
    else:
        loaded = resolve_task(str(task))
        assert (loaded.kind, loaded.entry) == want


async def test_status_report_and_cli_say_whether_scores_are_trusted(db_path, tmp_path):
    split = task_dir(tmp_path / "split")
    kinds = {"circle_packing_26": "trusted", str(split): "trusted", str(DATA / "fn_task"): "in_candidate",
             str(DATA / "script_task"): "in_candidate"}
    async with open_workspace(db_path, slots=2) as ws:
        ids = {}
        for task, scoring in kinds.items():
            status = await runs.start_run(ws, task, config={"num_islands": 1})
            ids[status.run.run_id] = scoring
            assert status.scoring == scoring and status.run.scoring == scoring
            assert ("can forge" in status.scoring_detail) == (scoring != "trusted")
            html = await build_report(ws, status.run.run_id, ws.archive.path.name)
            assert f'<dd id="fact-scores">{status.scoring_detail.replace(chr(39), "&#x27;")}</dd>' in html
        assert {r.run_id: r.scoring for r in (await runs.list_runs(ws)).runs} == ids
    listing = subprocess.run([sys.executable, "-m", "evomcp", "runs", "--db", str(db_path)], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [line.split("scores ")[1].split()[0] for line in lines] == list(ids.values())


async def test_a_run_whose_task_changed_contract_is_mixed(db_path, tmp_path):
    """A task directory moved from evaluate(program_path) to the split contract between two server lives."""
    task = task_dir(tmp_path / "task", evaluate="def evaluate(p):\n    return {'combined_score': 1.0}\n")
    async with open_workspace(db_path, slots=2) as ws:
        status = await runs.start_run(ws, str(task), config=NO_NOVELTY)
        assert status.scoring == "in_candidate"
    (task / "evaluate.py").write_text(EVALUATE)
    async with open_workspace(db_path, slots=2) as ws:
        run_id = status.run.run_id
        assert (await runs.get_run_status(ws, run_id)).scoring == "in_candidate"  # nothing scored the new way yet
        await steps.propose_candidate(ws, run_id, status.best.id, code=block("def run():\n    return [0.25, 0.5, 0.75]"))
        mixed = await runs.get_run_status(ws, run_id)
        assert mixed.scoring == "mixed" and "split contract" in mixed.scoring_detail
        assert "evaluate(program_path)" in mixed.scoring_detail
        assert "mixed: some scores" in await build_report(ws, run_id, ws.archive.path.name)
        # a run from before contracts were recorded: a built-in task is trusted, a task directory is not
        await ws.archive.set_note(run_id, NOTE, None)
        builtin = await runs.start_run(ws, "circle_packing_26", config={"num_islands": 1})
        await ws.archive.set_note(builtin.run.run_id, NOTE, None)
        assert {r.run_id: r.scoring for r in (await runs.list_runs(ws)).runs} == {
            run_id: "in_candidate", builtin.run.run_id: "trusted"}
