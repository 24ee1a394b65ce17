"""The `evomcp` command as a user runs it: run (offline and with a model), runs, show, export, tasks."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

from evomcp.evaluators.task import BUILTIN_TASKS
from evomcp.testing.fake_openai import FakeOpenAI

from test_driver import good_model


def evomcp(*args, timeout=300, env_drop=(), **kw):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-m", "evomcp", *args], capture_output=True, text=True, timeout=timeout,
                          env={**env, "COLUMNS": "120"}, **kw)


def test_offline_run_improves_and_is_inspectable(tmp_path):
    db = str(tmp_path / "cli.db")
    out = evomcp("run", "circle_packing_26", "--budget", "60", "--seed", "3", "--db", db)
    assert out.returncode == 0, out.stderr
    assert "run 1 finished" in out.stderr and "evaluation budget of 60 reached" in out.stderr
    listing = evomcp("runs", "--db", db)
    assert listing.returncode == 0 and "circle_packing_26" in listing.stdout
    status = json.loads(evomcp("show", "1", "--db", db).stdout)
    assert status["best"]["combined_score"] > 1.609913140863308  # better than the seed
    assert status["driver"]["state"] == "finished" and status["driver"]["arms"]["perturb"]["pulls"] >= 60
    assert status["run"]["status"] == "finished" and "budget of 60" in status["run"]["status_reason"]
    assert status["candidates_evaluated"] == 60 == status["evaluations_finished"] - 1 == status["driver"]["evaluations"]
    best = evomcp("show", "1", "--best", "--db", db).stdout
    assert "EVOLVE-BLOCK-START" in best and "def run_packing" in best
    rows = list(csv.DictReader(io.StringIO(evomcp("export", "1", "--format", "csv", "--db", db).stdout)))
    assert {"id", "combined_score", "status", "island"} <= set(rows[0])
    assert len(rows) == status["evaluations_finished"]  # the seed once, however many islands it is on
    assert sum(not row["parent_id"] for row in rows) == 1
    ids = {int(row["id"]) for row in rows}
    assert all(not row["parent_id"] or int(row["parent_id"]) in ids for row in rows)  # every parent is there
    lines = evomcp("export", "1", "--db", db).stdout.splitlines()
    assert len(lines) == len(rows) and "code" in json.loads(lines[-1])


def test_run_with_a_model_endpoint(tmp_path):
    db = str(tmp_path / "model.db")
    with FakeOpenAI() as fake:
        fake.add_model("m", good_model(7))
        spec = f"name=m,base_url={fake.base_url},key_env=none,price_in=1,price_out=2"
        out = evomcp("run", "circle_packing_26", "--model", spec, "--no-perturb", "--budget", "8",
                     "--max-cost", "1", "--config", '{"novelty": false}', "--db", db)
        assert out.returncode == 0, out.stderr
        assert len(fake.calls("m")) >= 8
    status = json.loads(evomcp("show", "1", "--db", db).stdout)
    assert status["models"]["m"]["calls"] >= 8 and 0 < status["cost_usd"] <= 1


def test_bad_model_settings_are_clear_errors(tmp_path):
    out = evomcp("run", "circle_packing_26", "--model", "name=x,model=y,key_env=NO_SUCH_KEY_VAR", "--budget", "1",
                 "--db", str(tmp_path / "x.db"))
    assert out.returncode == 2 and "needs its API key in $NO_SUCH_KEY_VAR" in out.stderr
    out = evomcp("run", "no_such_task", "--db", str(tmp_path / "x.db"))
    assert out.returncode == 2 and "neither a built-in task" in out.stderr


def candidates_in(db, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the archive holds `at_least` evaluated candidates (read with sqlite3, as another process would)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(db)
            try:
                (n,) = con.execute("SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL"
                                   " AND status IN ('evaluated', 'failed')").fetchone()
            finally:
                con.close()
        except sqlite3.OperationalError:  # not created yet
            n = 0
        if n >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} candidates evaluated (exit code {proc.poll()})")


def resume_command(stderr: str) -> list[str]:
    """The command the CLI printed to continue the run, as argv for this Python."""
    import shlex

    line = next(line for line in stderr.splitlines() if "Continue with: " in line)
    words = shlex.split(line.split("Continue with: ", 1)[1])
    assert words[0] == "evomcp"
    return [sys.executable, "-m", "evomcp", *words[1:]]


def test_ctrl_c_stops_cleanly_and_the_printed_command_resumes_toward_the_same_budget(tmp_path):
    db = str(tmp_path / "int.db")
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--budget", "40",
                             "--concurrency", "1", "--db", db], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    candidates_in(db, 5, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run 1 interrupted" in err
    status = json.loads(evomcp("show", "1", "--db", db).stdout)
    assert status["counts"].get("running", 0) == 0 and status["driver"]["state"] == "stopped"
    assert status["run"]["status"] == "interrupted" and 5 <= status["candidates_evaluated"] < 40
    command = resume_command(err)
    assert command[3:] == ["run", "circle_packing_26", "--budget", "40", "--concurrency", "1", "--db", db,
                           "--resume", "1"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(evomcp("show", "1", "--db", db).stdout)
    # the budget is the run's total: resuming went on to it, not 40 more
    assert after["candidates_evaluated"] == 40 and after["run"]["status"] == "finished"
    assert after["driver"]["evaluations"] == 40


def test_tasks_lists_every_builtin():
    out = evomcp("tasks")
    assert len(BUILTIN_TASKS) == 6  # five in Python, tsp_berlin52 in C++
    for name in BUILTIN_TASKS:
        assert name in out.stdout


def test_read_only_commands_leave_a_live_servers_running_programs_alone(tmp_path):
    """`runs`, `show`, `export` and `report` may look at an archive a server is evaluating in."""
    import anyio

    from evomcp.store import Archive

    db = tmp_path / "live.db"

    async def a_program_being_evaluated():
        archive = await Archive.open(db)
        run = await archive.create_run("r", "circle_packing_26", "circle_packing_26", {}, None)
        program = await archive.insert_program(run_id=run.id, parent_id=None, island=0, generation=0,
                                               code="x = 1\n", code_hash="h", diff=None, patch_type="full",
                                               description=None)
        await archive.set_program_status(program.id, "running")
        await archive.close()
        return program.id

    async def status_of(program_id):
        archive = await Archive.open(db)
        try:
            return (await archive.get_program(1, program_id)).status
        finally:
            await archive.close()

    program_id = anyio.run(a_program_being_evaluated)
    for command in (["runs"], ["show", "1"], ["export", "1", "--format", "csv"],
                    ["report", "1", "--output", str(tmp_path / "r.html")]):
        out = evomcp(*command, "--db", str(db))
        assert out.returncode == 0, out.stderr
    assert anyio.run(status_of, program_id) == "running"


async def test_a_look_at_an_archive_starts_no_sandbox(tmp_path):
    """What `runs`, `show`, `export` and `report` open: the archive read-only, and an executor that starts
    nothing; the isolation shown is the one the run's evaluations were recorded with."""
    from evomcp.evaluators.executor import ReadOnlyExecutor
    from evomcp.tools import runs
    from evomcp.tools.workspace import open_workspace

    db = tmp_path / "look.db"
    async with open_workspace(db, slots=1) as ws:
        run_id = (await runs.start_run(ws, "circle_packing_26")).run.run_id
        recorded = await ws.executor.isolation()
    async with open_workspace(db, reset=False) as ws:
        assert isinstance(ws.executor, ReadOnlyExecutor)
        status = await runs.get_run_status(ws, run_id)
        assert status.isolation == recorded and status.evaluations_finished == 1
        assert ws.executor.template_pid is None and ws.executor.scorer_pid is None


def test_commands_import_only_what_they_use(tmp_path):
    """`evomcp run` without a model never imports `openai` (a second of start-up) or the MCP SDK; with a model,
    `openai` loads in the background while the run is set up, and the run's first model call gets it."""
    probe = ("import sys, threading; from evomcp.server import cli\n"
             "names, start = [], threading.Thread.start\n"
             "threading.Thread.start = lambda self: (names.append(self.name), start(self))[1]\n"
             "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
             "loaded = [m for m in ('openai', 'mcp', 'numba', 'evomcp.server.app') if m in sys.modules]\n"
             "print('LOADED', sorted(loaded + ['(preloaded)'] * ('evomcp-import-openai' in names)))")

    def loaded(*args):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split("LOADED", 1)[1].strip()

    db = str(tmp_path / "a.db")
    assert loaded("run", "circle_packing_26", "--budget", "2", "--db", db, "--progress-every", "100") == "[]"
    assert loaded("runs", "--db", db) == "[]"
    with FakeOpenAI() as fake:
        fake.add_model("m", good_model(5))
        assert loaded("run", "circle_packing_26", "--budget", "2", "--db", db, "--no-perturb", "--model",
                      f"name=m,base_url={fake.base_url},key_env=none,price_in=0,price_out=0") \
            == "['(preloaded)', 'openai']"
        assert len(fake.calls("m")) >= 2
