"""Runs under real faults: a full disk, a read-only archive, kill -9 during the seed, dead model endpoints,
and mistakes on the command line. Each says what happened in one line, loses nothing, and resumes."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp.client import Client

from evomcp.testing import procs
from evomcp.testing.fake_openai import FakeOpenAI, HTTPError
from evomcp.testing.servers import free_port, mcp_url, running_http_server
from evomcp.tools.perturb import perturb

from conftest import poll_run_status, start_driven_run
from test_cli import candidates_in, evomcp, resume_command

SLOW_TASK = {  # a task directory whose evaluations take a second: a kill lands inside the seed's
    "initial.py": "# EVOLVE-BLOCK-START\nVALUE = 1.0\nSTEP = 0.5\n# EVOLVE-BLOCK-END\n",
    "evaluate.py": ("import importlib.util, time\n\n\ndef evaluate(program_path):\n    time.sleep(1.0)\n"
                    "    spec = importlib.util.spec_from_file_location('p', program_path)\n"
                    "    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n"
                    "    return {'combined_score': -abs(module.VALUE - 3.0) - abs(module.STEP), 'correct': True}\n"),
}


def mountable() -> str | None:
    """Why a tmpfs cannot be mounted here (None: it can)."""
    if os.geteuid() != 0:
        return "a real full disk needs a small tmpfs, which only root may mount"
    probe = Path(f"/tmp/evomcp-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                          capture_output=True).returncode != 0:
            return "mount -t tmpfs is refused here"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


needs_tmpfs = pytest.mark.skipif(bool(mountable()), reason=str(mountable()))


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` at `path`: a real disk that fills up; resize() makes room again."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize(path: Path, size: str, *options: str) -> None:
    subprocess.run(["mount", "-o", ",".join(["remount", f"size={size}", *options]), str(path)], check=True)


def one_error_line(stderr: str) -> str:
    """The CLI's error: one line, no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def archive(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return con


def seed_running(db: Path, timeout: float = 60) -> None:
    """Until the run's seed (program 1) is being evaluated, read as another process would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):
            con = sqlite3.connect(db)
            row = con.execute("SELECT status FROM programs WHERE id = 1").fetchone()
            con.close()
            if row and row[0] == "running":
                return
        time.sleep(0.05)
    raise AssertionError("the seed's evaluation never began")


def write_task(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# --- a full disk, a read-only archive ------------------------------------------------------------------------


@needs_tmpfs
def test_a_full_disk_ends_a_cli_run_in_one_line_and_the_printed_command_finishes_it(tmp_path):
    with small_disk(tmp_path / "disk", "512k") as disk:
        db = disk / "a.db"
        out = evomcp("run", "circle_packing_26", "--budget", "60", "--db", str(db))
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        # the cause, said in the run's last line (or an error line where even the run's end cannot be written)
        said = [line for line in out.stderr.splitlines() if line.startswith(("error: ", "run 1 failed: "))]
        assert len(said) == 1, out.stderr
        assert "database or disk is full" in said[0] and "free space" in said[0] and str(db) in said[0]
        command = resume_command(out.stderr)
        assert command[-2:] == ["--resume", "1"] and "60" in command
        before = archive(db).execute("SELECT COUNT(*) FROM programs WHERE status = 'evaluated'").fetchone()[0]
        resize(disk, "64m")
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        con = archive(db)
        evaluated, = con.execute("SELECT COUNT(*) FROM programs WHERE parent_id IS NOT NULL"
                                 " AND status IN ('evaluated', 'failed')").fetchone()
        status, = con.execute("SELECT status FROM runs WHERE id = 1").fetchone()
        con.close()
    assert 60 <= evaluated <= 60 + os.cpu_count() and evaluated >= before and status == "finished"


@needs_tmpfs
async def test_a_full_disk_fails_the_driven_run_not_the_server_and_resume_run_continues(tmp_path):
    with small_disk(tmp_path / "disk", "512k") as disk:
        db, port = disk / "s.db", free_port()
        url = mcp_url(port)
        with running_http_server(db, port, "--no-auth") as proc:
            run_id = await start_driven_run(url, task="circle_packing_26", config={"num_islands": 2},
                                            driver={"max_evaluations": 40, "concurrency": 2})
            status = await poll_run_status(url, run_id, lambda s: s["driver"]["state"] != "running",
                                           interval=0.2, timeout=120)
            assert status["driver"]["state"] == "failed", status["driver"]
            assert "database or disk is full" in status["driver"]["reason"]
            assert proc.poll() is None  # the server lives on and answers
            async with Client(url) as client:
                listing = await client.call_tool("list_runs", {})
                assert not listing.is_error and listing.structured_content["runs"][0]["run_id"] == run_id
                sampled = await client.call_tool("sample_parent", {"run_id": run_id})
                if not sampled.is_error:  # a proposal is a write: refused with the cause, in one line
                    parent = sampled.structured_content
                    code, _ = perturb(parent["parent"]["code"], np.random.default_rng(1))
                    proposed = await client.call_tool("propose_candidate", {
                        "run_id": run_id, "parent_id": parent["parent"]["id"], "code": code,
                        "ticket": parent["ticket"]})
                    assert proposed.is_error
                    message = proposed.content[0].text
                else:
                    message = sampled.content[0].text
                assert "database or disk is full" in message and "\n" not in message
            resize(disk, "64m")
            async with Client(url) as client:
                resumed = await client.call_tool("resume_run", {"run_id": run_id})
                assert not resumed.is_error, resumed.content[0].text
            status = await poll_run_status(url, run_id, lambda s: s["driver"]["state"] != "running"
                                           and s["in_flight"] == 0, interval=0.2, timeout=180)
            assert proc.poll() is None
        con = archive(db)
        pending, = con.execute("SELECT COUNT(*) FROM programs WHERE status IN ('pending', 'running')").fetchone()
        con.close()
    assert status["driver"]["state"] == "finished", status["driver"]
    assert 40 <= status["candidates_evaluated"] <= 42 and pending == 0


@needs_tmpfs
def test_a_read_only_archive_is_one_line_for_run_resume_and_serve(tmp_path):
    with small_disk(tmp_path / "disk", "64m") as disk:
        db = disk / "r.db"
        assert evomcp("run", "circle_packing_26", "--budget", "3", "--db", str(db)).returncode == 0
        resize(disk, "64m", "ro")
        out = evomcp("run", "circle_packing_26", "--resume", "1", "--budget", "6", "--db", str(db))
        assert out.returncode == 1 and "read" in one_error_line(out.stderr).lower()
        served = evomcp("serve", "--db", str(db), input="")
        assert served.returncode == 1 and str(db) in one_error_line(served.stderr)
        shown = evomcp("show", "1", "--db", str(db))  # reading still works
        assert shown.returncode == 0 and json.loads(shown.stdout)["candidates_evaluated"] == 3


# --- kill -9 ------------------------------------------------------------------------------------------------


def test_kill_9_during_the_seed_then_resume_seeds_every_island_and_leaves_nothing_behind(tmp_path):
    task = write_task(tmp_path / "slow_task", SLOW_TASK)
    db = tmp_path / "k.db"
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "run", str(task), "--budget", "4", "--concurrency", "2",
                             "--config", '{"num_islands": 2}', "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seed_running(db)
    ours = procs.descendants(proc.pid, zombies=True)
    proc.kill()
    _, err = proc.communicate(timeout=10)
    assert not procs.survivors(ours, 5), "processes of the killed run lived on"
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    resumed = evomcp("run", str(task), "--resume", "1", "--budget", "4", "--concurrency", "2", "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    con = archive(db)
    seeds = con.execute("SELECT m.island, p.status FROM programs p JOIN island_members m ON m.program_id = p.id"
                        " WHERE p.parent_id IS NULL ORDER BY m.island").fetchall()
    islands = {island for island, in con.execute("SELECT island FROM programs WHERE parent_id IS NOT NULL")}
    left = con.execute("SELECT COUNT(*) FROM programs WHERE status IN ('pending', 'running')").fetchone()[0]
    con.close()
    assert seeds == [(0, "evaluated"), (1, "evaluated")] and left == 0  # one seed, on both islands
    assert islands <= {0, 1}
    assert not list(Path("/tmp").glob(f"evomcp-sandbox-{proc.pid}-*"))  # its work folders were swept


def test_kill_9_mid_run_leaves_no_process_and_no_traceback(tmp_path):
    db = tmp_path / "m.db"
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--budget", "500",
                             "--db", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    candidates_in(str(db), 10, proc)
    ours = procs.descendants(proc.pid, zombies=True)
    assert len(ours) >= 2  # the sandbox template and the scorer at least
    proc.kill()
    _, err = proc.communicate(timeout=10)
    assert not procs.survivors(ours, 3)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --- model endpoints that fail -----------------------------------------------------------------------------


def dead_endpoint_spec(name: str = "dead") -> str:
    return f"name={name},model=m,base_url=http://127.0.0.1:{free_port()}/v1,key_env=none,max_retries=0"


def test_a_model_that_cannot_be_reached_is_reported_at_once_and_ends_the_run(tmp_path):
    db = str(tmp_path / "dead.db")
    out = evomcp("run", "circle_packing_26", "--model", dead_endpoint_spec(), "--budget", "200",
                 "--progress-every", "0.5", "--db", db, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "Retrying request" not in out.stderr
    said = [line for line in out.stderr.splitlines() if line.startswith("model dead is failing: ")]
    assert len(said) == 1 and "cannot reach http://127.0.0.1" in said[0] and "onnect" in said[0]
    status = json.loads(evomcp("show", "1", "--db", db).stdout)
    assert status["run"]["status"] == "failed" and "every model is failing" in status["run"]["status_reason"]
    assert "--offline-fallback" in status["run"]["status_reason"]
    assert status["models"]["dead"]["failing"] >= 3 and "cannot reach" in status["models"]["dead"]["last_error"]
    assert status["candidates_evaluated"] < 200  # it stopped, it did not run on with the offline operator


def test_a_refused_key_ends_the_run_at_once_unless_the_offline_operator_was_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULT_KEY", "wrong")
    with FakeOpenAI(api_key="right") as fake:
        fake.add_model("m", lambda request: "unused")
        spec = f"name=m,base_url={fake.base_url},key_env=FAULT_KEY,max_retries=0"
        out = evomcp("run", "circle_packing_26", "--model", spec, "--budget", "20", "--db", str(tmp_path / "a.db"))
        assert out.returncode == 1 and "refused the API key from $FAULT_KEY" in out.stderr
        status = json.loads(evomcp("show", "1", "--db", str(tmp_path / "a.db")).stdout)
        assert status["candidates_evaluated"] < 20 and status["run"]["status"] == "failed"
        fallback = evomcp("run", "circle_packing_26", "--model", spec, "--budget", "20", "--offline-fallback",
                          "--db", str(tmp_path / "b.db"))
    assert fallback.returncode == 0, fallback.stderr
    assert "model m is failing" in fallback.stderr and "run 1 finished" in fallback.stderr
    status = json.loads(evomcp("show", "1", "--db", str(tmp_path / "b.db")).stdout)
    assert status["candidates_evaluated"] == 20 and status["driver"]["failing_models"]["m"]


async def test_a_server_driver_whose_models_fail_says_so_in_the_status(tmp_path):
    db, port = tmp_path / "d.db", free_port()
    url = mcp_url(port)
    with running_http_server(db, port, "--no-auth"):
        run_id = await start_driven_run(url, task="circle_packing_26", driver={
            "models": [{"name": "dead", "model": "m", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                        "api_key_env": None, "max_retries": 0}], "max_evaluations": 100, "concurrency": 2})
        status = await poll_run_status(url, run_id, lambda s: s["driver"]["state"] != "running", interval=0.2,
                                       timeout=120)
    assert status["driver"]["state"] == "failed" and "every model is failing" in status["driver"]["reason"]
    assert "cannot reach" in status["driver"]["failing_models"]["dead"]
    assert status["models"]["dead"]["failing"] >= 3


# --- the command line ----------------------------------------------------------------------------------------


def test_command_line_mistakes_get_one_line_naming_the_flag(tmp_path):
    db = str(tmp_path / "c.db")
    for args, needle in ((["--budget", "-1"], "argument --budget: must be at least 1"),
                         (["--budget", "x"], "argument --budget: 'x' is not a whole number"),
                         (["--concurrency", "0"], "argument --concurrency: must be at least 1"),
                         (["--max-wall", "0"], "argument --max-wall: must be more than 0"),
                         (["--db", "/nonexistent/dir/x.db"], "--db /nonexistent/dir/x.db: the folder /nonexistent/dir "
                                                             "does not exist"),
                         (["--db", "/proc/nonexistent/x.db"], "--db /proc/nonexistent/x.db: the folder"),
                         (["--db", str(tmp_path)], f"--db {tmp_path} is a folder"),
                         (["--resume", "4", "--db", db], f"the archive {db} has no run 4; `evomcp runs` lists")):
        out = evomcp("run", "circle_packing_26", *args)
        assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # no usage block: one line
    assert not Path("/nonexistent").exists()
    for args, needle in ((["--config", "{not json"], "--config is not JSON"),
                         (["--config", '{"selction": "uniform"}'], "unknown setting 'selction'"),
                         (["--config", '{"selection": "best"}'], "bad run config: selection: Input should be"),
                         (["--model", "name=t,modle=x"], "--model 'name=t,modle=x': modle: unknown setting"),
                         (["--model", "name=t,price_in=abc"], "price_in: Input should be a valid number"),
                         (["--model", "gpt-x"], "needs its API key in $OPENAI_API_KEY")):
        out = evomcp("run", "circle_packing_26", "--db", db, *args, env_drop=("OPENAI_API_KEY",))
        assert out.returncode == 2 and needle in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    if Path(db).exists():  # no run was made for a command that could not start
        assert archive(Path(db)).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert evomcp("run", "circle_packing_26", "--budget", "2", "--db", db).returncode == 0
    other = evomcp("run", "circle_packing_32", "--resume", "1", "--db", db)
    assert other.returncode == 2 and "run 1 evolves circle_packing_26, not circle_packing_32" in other.stderr
    for command in (["show", "9"], ["export", "9"], ["report", "9"]):
        out = evomcp(*command, "--db", db)
        assert out.returncode == 2 and "has no run 9; `evomcp runs` lists" in out.stderr and "list_runs" not in \
            out.stderr, out.stderr
    for command in (["report", "1", "-o", "/nonexistent/r.html"], ["export", "1", "-o", "/nonexistent/x.csv"]):
        out = evomcp(*command, "--db", db)
        assert out.returncode == 2 and "cannot write it" in out.stderr and "Traceback" not in out.stderr, out.stderr
    task = evomcp("run", "no_such_task", "--db", db)
    assert task.returncode == 2 and "`evomcp tasks`" in task.stderr and "list_tasks" not in task.stderr, task.stderr
    piped = subprocess.run(f"{sys.executable} -m evomcp runs --db {db} | head -c 1", shell=True, capture_output=True,
                           text=True, timeout=60)
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr


def test_progress_lines_where_stderr_is_not_a_terminal(tmp_path):
    out = evomcp("run", "circle_packing_26", "--budget", "40", "--concurrency", "1", "--progress-every", "0.3",
                 "--db", str(tmp_path / "p.db"))
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    progress = [line for line in lines if line.startswith("run 1: ") and "/40 candidates evaluated" in line]
    assert len(progress) >= 2, out.stderr
    counts = [int(line.split(": ", 1)[1].split("/")[0]) for line in progress]
    bests = [float(line.split("best ", 1)[1].split(" ")[0]) for line in progress]
    assert counts == sorted(counts) and bests == sorted(bests)  # never backwards
    assert lines[-1].startswith("run 1 finished: ") and "40 candidates evaluated in all" in lines[-1]


async def test_a_server_killed_during_the_seed_resumes_the_driver_it_was_asked_for(tmp_path):
    task = write_task(tmp_path / "slow_task", SLOW_TASK)
    db, port = tmp_path / "seed.db", free_port()
    url = mcp_url(port)
    with running_http_server(db, port, "--no-auth") as proc:
        run_id = await start_driven_run(url, task=str(task), wait_s=0, config={"num_islands": 2},
                                        driver={"max_evaluations": 3, "concurrency": 2})
        con = sqlite3.connect(db)
        assert con.execute("SELECT status FROM programs WHERE id = 1").fetchone()[0] in ("pending", "running")
        con.close()
        proc.kill()
        proc.wait()
    with running_http_server(db, port, "--no-auth", "--resume-drivers"):
        status = await poll_run_status(url, run_id, lambda s: s["driver"]["state"] != "running"
                                       and s["in_flight"] == 0, interval=0.2, timeout=120)
    assert status["driver"]["state"] == "finished", status["driver"]
    assert 3 <= status["candidates_evaluated"] <= 5 and set(status["islands"]) == {"0", "1"}


def test_ctrl_c_while_the_seed_is_evaluated_says_how_to_continue(tmp_path):
    task = write_task(tmp_path / "slow_task", SLOW_TASK)
    db = tmp_path / "early.db"
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "run", str(task), "--budget", "3", "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seed_running(db)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "run 1 interrupted while it was set up; nothing is lost" in err
    con = archive(db)
    assert con.execute("SELECT status FROM runs WHERE id = 1").fetchone()[0] == "interrupted"
    assert con.execute("SELECT status FROM programs WHERE id = 1").fetchone()[0] == "pending"
    con.close()
    resumed = subprocess.run(resume_command(err), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and "run 1 finished" in resumed.stderr, resumed.stderr


# --- what review found ------------------------------------------------------------------------------------------


def in_new_pid_namespace(code: str, *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run Python `code` as PID 1 of a new pid namespace (a container's entrypoint); skip where not allowed."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    out = subprocess.run(["unshare", *user, "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=120, cwd=cwd)
    if out.returncode != 0 and "unshare:" in out.stderr:
        pytest.skip(f"no pid namespace here: {out.stderr.strip()}")
    return out


def test_the_scorer_works_for_a_server_that_is_pid_1():
    out = in_new_pid_namespace(
        "import os, anyio\n"
        "from evomcp.evaluators.scorer import Scorer\n"
        "async def main():\n"
        "    scorer = Scorer()\n"
        "    try:\n"
        "        verdict = await scorer.score('circle_packing_26', [[0.5, 0.5, 0.1]] * 26)\n"
        "    finally:\n"
        "        await scorer.aclose()\n"
        "    print(os.getpid(), verdict.error)\n"
        "anyio.run(main)\n")
    assert out.returncode == 0, out.stderr
    pid, _, error = out.stdout.strip().partition(" ")
    assert pid == "1" and "must return" in error, out.stdout  # judged by the scorer, not lost with it


def test_a_live_servers_work_folder_is_kept_even_from_another_pid_namespace(tmp_path):
    from evomcp.evaluators.sandbox import WORK_ROOT_PREFIX, lock_work_root

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    live = tmp / f"{WORK_ROOT_PREFIX}999999-live"  # its owner's pid means nothing in the sweeper's namespace
    dead = tmp / f"{WORK_ROOT_PREFIX}999998-dead"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "left.txt").write_text("x")
    held = lock_work_root(live)
    try:
        out = subprocess.run([sys.executable, "-c", "from evomcp.evaluators.sandbox import sweep_work_roots; "
                              "print(sorted(p.name for p in sweep_work_roots()))"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "TMPDIR": str(tmp)})
        assert out.returncode == 0, out.stderr
        assert live.exists() and not dead.exists() and "dead" in out.stdout and "live" not in out.stdout
    finally:
        os.close(held)


def test_a_read_only_look_never_reads_around_a_write_ahead_log(tmp_path):
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(dir="/tmp"))  # not below pytest's folder, which only its owner may enter
    where.chmod(0o755)
    db = where / "wal" / "a.db"
    db.parent.mkdir()
    try:
        _look_at_a_wal(db)
    finally:
        db.parent.chmod(0o755)
        shutil.rmtree(where)


def _look_at_a_wal(db: Path) -> None:
    import anyio

    from evomcp.store import Archive, StorageError

    async def write_and_vanish():
        source = db.parent.parent / "src.db"
        archive = await Archive.open(source)
        await archive._db.execute("PRAGMA wal_autocheckpoint=0")
        for k in range(3):
            await archive.create_run(f"r{k}", "t", "t", {}, None)
        # the files as a kill leaves them: the commits still in the -wal file, no -shm
        for suffix in ("", "-wal"):
            Path(f"{db}{suffix}").write_bytes(Path(f"{source}{suffix}").read_bytes())
        await archive.close()

    anyio.run(write_and_vanish)
    assert Path(f"{db}-wal").stat().st_size > 0 and not Path(f"{db}-shm").exists()
    if os.geteuid() == 0:  # root writes anywhere: look as nobody, who cannot make the -shm file
        code = ("import anyio, sys; from evomcp.store import Archive\n"
                "async def main():\n"
                "    try:\n"
                "        a = await Archive.open(sys.argv[1], read_only=True)\n"
                "        print(len(await a.list_runs()))\n"
                "    except Exception as e:\n"
                "        print(type(e).__name__, e)\n"
                "anyio.run(main)\n")
        os.chmod(db.parent, 0o555)
        for f in db.parent.iterdir():
            os.chmod(f, 0o444)
        out = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable,
                              "-c", code, str(db)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "HOME": "/tmp"})
        os.chmod(db.parent, 0o755)
        if "Permission denied" in out.stderr or "No module named" in out.stderr:
            pytest.skip("this Python cannot be run by nobody here")
        seen = out.stdout.strip()
    else:
        os.chmod(db.parent, 0o555)
        try:
            async def look():
                try:
                    archive = await Archive.open(db, read_only=True)
                    return str(len(await archive.list_runs()))
                except StorageError as exc:
                    return f"StorageError {exc}"
            seen = anyio.run(look)
        finally:
            os.chmod(db.parent, 0o755)
    assert seen in ("3",) or seen.startswith("StorageError"), seen  # all of it, or a clear refusal: never 0 of 3


def test_a_model_error_that_looks_like_markup_is_shown_as_text():
    from rich.console import Console

    from evomcp.server.progress import Snapshot

    snap = Snapshot(candidates=1, budget=5, best=1.0, initial=0.5, target=None, refused=0, cost_usd=0.0,
                    tries={"[bold]m": 2}, failing={"m": "HTTP 404 at [/v1/chat/completions] [red]"}, rate=1.0)
    console = Console(record=True, width=200)
    console.print(snap.table())
    shown = console.export_text()
    assert "[/v1/chat/completions] [red]" in shown and "[bold]m:2" in shown


async def test_an_overloaded_model_is_shown_failing_but_does_not_end_the_run(ws):
    from evomcp.server.driver import Driver, DriverConfig
    from evomcp.tools import runs as run_tools
    from test_driver import good_model, model

    with FakeOpenAI() as fake:
        fake.script("busy", [HTTPError(503)] * 10)
        fake.add_model("busy", good_model(4))
        status = await run_tools.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        driver = Driver(ws, status.run.run_id, DriverConfig(models=[model("busy", fake)], perturb=False,
                                                            max_evaluations=6, concurrency=2))
        with anyio.fail_after(120):
            final = await driver.run()
    assert final.state == "finished" and final.evaluations == 6, final.reason
    calls = await ws.archive.llm_call_stats(status.run.run_id)
    assert calls["busy"]["failed"] == 10 and calls["busy"]["failing"] == 0


async def test_a_budget_is_met_exactly_when_steps_in_flight_yield_nothing(ws):
    from evomcp.server.driver import Driver, DriverConfig
    from evomcp.tools import runs as run_tools

    status = await run_tools.start_run(ws, "circle_packing_26", config={"num_islands": 1})
    dead = {"name": "dead", "model": "m", "base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key_env": None,
            "max_retries": 0}
    driver = Driver(ws, status.run.run_id, DriverConfig(models=[dead], max_evaluations=5, concurrency=2,
                                                        offline_fallback=True))
    with anyio.fail_after(120):
        final = await driver.run()
    after = await run_tools.get_run_status(ws, status.run.run_id)
    assert final.state == "finished" and final.evaluations == 5 == after.candidates_evaluated, final.reason
    assert "dead" in final.failing_models


async def test_resuming_repairs_the_seeds_islands_until_a_migration_moved_it(ws):
    """A process killed between the seed's record and its placement left islands without it: resuming places
    it. After a migration that moved the seed off an island, resuming leaves it where the migration put it."""
    from evomcp.tools import runs as run_tools

    status = await run_tools.start_run(ws, "circle_packing_26", config={"num_islands": 3})
    run_id = status.run.run_id
    seed = status.best.id
    assert await ws.archive.memberships(run_id) == [(seed, 0), (seed, 1), (seed, 2)]
    await ws.archive._db.execute("DELETE FROM island_members WHERE island > 0")  # killed before the placement
    await run_tools.stop_run(ws, run_id)
    await run_tools.resume_run(ws, run_id)
    assert await ws.archive.memberships(run_id) == [(seed, 0), (seed, 1), (seed, 2)]
    assert (await run_tools.get_run_status(ws, run_id)).islands[2].best_id == seed
    state = await ws.state(run_id)
    await state.note_migration(6)
    await state.move([(seed, 1, 2)])  # a migration moved the seed off island 1
    await run_tools.stop_run(ws, run_id)
    await run_tools.resume_run(ws, run_id)
    assert await ws.archive.memberships(run_id) == [(seed, 0), (seed, 2)]
    assert await ws.archive.counts_by_status(run_id) == {"evaluated": 1}


async def test_a_driver_asked_for_on_a_seed_that_fails_says_so(ws, tmp_path):
    from evomcp.server.app import build_server
    from evomcp.server.driver import Drivers

    task = write_task(tmp_path / "bad_seed", {
        "initial.py": "# EVOLVE-BLOCK-START\nX = 1\n# EVOLVE-BLOCK-END\n",
        "evaluate.py": "import time\n\n\ndef evaluate(program_path):\n    time.sleep(0.5)\n"
                       "    raise RuntimeError('the evaluator is broken')\n"})
    async with anyio.create_task_group() as tg:
        drivers = Drivers(ws, tg)
        async with Client(build_server(ws, drivers)) as client:
            started = await client.call_tool("start_run", {"task": str(task), "wait_s": 0,
                                                           "driver": {"max_evaluations": 3}})
            assert not started.is_error, started.content[0].text
            run_id = started.structured_content["run"]["run_id"]
            with anyio.fail_after(60):
                while True:
                    status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
                    if status["driver"]["state"] != "running":
                        break
                    await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    assert status["driver"]["state"] == "failed" and "the run is failed" in status["driver"]["reason"]
    assert status["run"]["status"] == "failed"
