"""Scale-out: the Ray and Dask executor backends on local clusters started by these tests.

One local Ray instance and one Dask LocalCluster (2 slots each) serve the whole module. Each
backend runs 100 perturbed candidates plus deliberately failing ones and must give results of
the same kind as the local executor; a remote timeout kills the child on the worker; a killed
worker's job is retried once elsewhere, and a second loss records the program as failed with a
reason naming the workers. Skipped with a reason when ray / dask are not installed; deselect
with `-m "not distributed"`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
import pytest_asyncio

from evomcp.evaluators import bundles
from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.task import resolve_task
from evomcp.server.driver import Driver, DriverConfig
from evomcp.testing import procs
from evomcp.tools import runs, steps
from evomcp.tools.workspace import open_workspace

from conftest import DATA

pytestmark = pytest.mark.distributed
on_module_loop = pytest.mark.asyncio(loop_scope="module")  # where the clusters live

CIRCLES = resolve_task("circle_packing_26")
SEED_SCORE = 1.609913140863308
SECRET = "SCALE_OUT_TEST_API_KEY"
HAS = {"ray": importlib.util.find_spec("ray") is not None,
       "dask": importlib.util.find_spec("distributed") is not None}
INSTALL = {"ray": "pip install -e '.[ray]'", "dask": "pip install -e '.[dask]'"}


def block(body: str) -> str:
    """The circle-packing seed with `body` run first in construct_centers (inside the EVOLVE-BLOCK)."""
    lines = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    marker = '    """Concentric rings around the middle of the square; an outer ring takes the rest."""\n'
    return CIRCLES.initial_code.replace(marker, marker + lines + "\n")


FAILING = {
    "raises": block('raise ValueError("deliberate failure")'),
    "exits": block("import sys\nsys.exit(3)"),
    "segfault": block("import ctypes\nctypes.string_at(0)"),
    "invalid": block("return np.full((n, 2), np.nan)"),
    "timeout": block("import time\ntime.sleep(60)"),
}
RUN_CONFIG = {"novelty": False, "timeout_s": 3, "num_islands": 1}


def sleeper(seconds: float) -> str:
    return block(f"import time\ntime.sleep({seconds})")


# ---------------------------------------------------------------- processes on this machine


def our_descendants() -> dict[int, str]:
    """Live processes below this one: pid -> command line."""
    table = procs.table(with_cmdline=True)
    return {pid: table[pid].cmdline for pid in procs.descendants(procs=table)}


def remote_templates() -> dict[int, tuple[int, list[int]]]:
    """Warm templates run by cluster workers (not by this process): pid -> (worker pid, live children that run
    a candidate; a spare child waiting for one does not)."""
    table = procs.table(with_cmdline=True)
    ours = procs.descendants(zombies=True, procs=table)  # the clusters of these tests; other people's processes not
    sandbox = {pid for pid, p in table.items() if "child.py" in p.cmdline and " --serve" in p.cmdline}
    # forked children keep the template's command line: a template is one whose parent is not in the sandbox
    workers = {pid for pid, p in table.items() if p.state != "Z" and p.cmdline}  # alive, not exiting
    templates = {pid: table[pid].ppid for pid in sandbox
                 if table[pid].ppid not in sandbox and table[pid].ppid in workers and table[pid].ppid != os.getpid()
                 and pid in ours}
    return {pid: (ppid, procs.named("evomcp-cand", among=procs.descendants(pid, procs=table)))
            for pid, ppid in templates.items()}


async def kill_busy_worker(exclude: set[int], timeout: float = 60) -> int:
    """SIGKILL the worker whose template is running a candidate; returns the template's pid."""
    with anyio.fail_after(timeout):
        while True:
            for template, (worker, children) in remote_templates().items():
                if children and template not in exclude:
                    os.kill(worker, signal.SIGKILL)
                    while procs.alive([template, *children]):
                        await anyio.sleep(0.05)  # the old tree goes first
                    return template
            await anyio.sleep(0.05)


async def no_remote_candidate_left(timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while any(children for _, children in remote_templates().values()):
            await anyio.sleep(0.1)


# ---------------------------------------------------------------- clusters


@pytest.fixture(scope="module")
def secret_in_environment():
    """A credential-looking variable in the server's environment while the clusters start."""
    os.environ[SECRET] = "sk-must-not-reach-workers"
    yield
    os.environ.pop(SECRET, None)


async def _backend(name: str):
    if not HAS[name]:
        pytest.skip(f"{name} is not installed: {INSTALL[name]}")
    from evomcp.evaluators.backends import make_executor

    executor = make_executor(name, "", slots=2)
    async with executor:
        yield executor


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ray_executor(secret_in_environment):
    async for executor in _backend("ray"):
        yield executor


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dask_executor(secret_in_environment):
    async for executor in _backend("dask"):
        yield executor


@pytest.fixture(params=["ray", "dask"])
def remote(request):
    return request.getfixturevalue(f"{request.param}_executor")


# ---------------------------------------------------------------- a run of 100 candidates


async def run_hundred(db_path: Path, executor=None) -> dict:
    """start_run + 100 perturbed candidates by the driver + the deliberately failing ones; what came out."""
    async with open_workspace(db_path, slots=2, executor=executor) as ws:
        ws.rng = np.random.default_rng(7)
        status = await runs.start_run(ws, "circle_packing_26", config=RUN_CONFIG)
        run_id, seed_id = status.run.run_id, status.best.id
        started = time.monotonic()
        final = await Driver(ws, run_id, DriverConfig(max_evaluations=100, concurrency=2)).run()
        seconds = time.monotonic() - started
        assert final.state == "finished", final.reason
        failing = {}
        async with anyio.create_task_group() as tg:
            for name, code in FAILING.items():
                async def propose(name=name, code=code):
                    result = await steps.propose_candidate(ws, run_id, seed_id, code=code, patch_type="full")
                    failing[name] = result.program
                tg.start_soon(propose)
        status = await runs.get_run_status(ws, run_id)
        programs = await _all_programs(ws, run_id)
        return {"status": status, "failing": failing, "programs": programs, "seconds": seconds}


async def _all_programs(ws, run_id):
    from evomcp.tools import views

    out, cursor = [], None
    while True:
        page = await views.get_archive(ws, run_id, limit=200, cursor=cursor)
        out += page.programs
        cursor = page.next_cursor
        if cursor is None:
            return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_reference(tmp_path_factory):
    return await run_hundred(tmp_path_factory.mktemp("local") / "archive.db")


def kinds(result: dict) -> dict:
    programs = result["programs"]
    correct_scores = [p.combined_score for p in programs if p.correct]
    return {
        "isolation": result["status"].isolation,
        "seed": next(p.combined_score for p in programs if p.generation == 0),
        "statuses": {p.status for p in programs} - {"failed"},  # perturb may or may not break one
        "metric_keys": {frozenset(p.public_metrics) for p in programs if p.correct},
        "scores_in_range": all(0.0 <= s <= 2.6359830849 for s in correct_scores),  # never above the best known
        "improved": max(correct_scores) > SEED_SCORE,
        "failing": {name: (p.status, p.correct, p.combined_score, p.error) for name, p in result["failing"].items()},
    }


@on_module_loop
async def test_hundred_candidates_match_the_local_backend(remote, local_reference, tmp_path):
    result = await run_hundred(tmp_path / "archive.db", executor=remote)
    evaluated = [p for p in result["programs"] if p.status in ("evaluated", "failed")]
    assert len(evaluated) >= 101 + len(FAILING)
    assert kinds(result) == kinds(local_reference)
    failing = result["failing"]
    assert failing["raises"].error == "ValueError: deliberate failure"
    assert failing["timeout"].status == "failed" and failing["timeout"].error.startswith("timeout: still running after 3 s")
    assert "SIGSEGV" in failing["segfault"].error and "sys.exit(3)" in failing["exits"].error
    assert failing["invalid"].status == "evaluated" and not failing["invalid"].correct
    print(f"\n{remote.backend}: 100 candidates in {result['seconds']:.1f} s "
          f"(local: {local_reference['seconds']:.1f} s)")
    await no_remote_candidate_left()


# ---------------------------------------------------------------- sandbox on the workers


@on_module_loop
async def test_remote_timeout_kills_the_child_on_the_worker(remote):
    code = block("""
        import subprocess, time
        subprocess.Popen(["sleep", "300"])
        while True:
            time.sleep(0.01)
    """)
    started = time.monotonic()
    report = await remote.evaluate(CIRCLES.model_copy(update={"timeout_s": 1.5}), code)
    assert report.failed and report.error.startswith("timeout: still running after 1.5 s")
    assert time.monotonic() - started < 15
    await no_remote_candidate_left()
    assert not any("sleep 300" in cmd for cmd in our_descendants().values())
    again = await remote.evaluate(CIRCLES, CIRCLES.initial_code)
    assert again.correct and again.combined_score == SEED_SCORE


@on_module_loop
async def test_cancelling_an_evaluation_kills_the_remote_child(remote):
    """Ctrl-C or a cancelled tool call: the engine's cancel may not stop a running task, the sandbox does."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(remote.evaluate, CIRCLES.model_copy(update={"timeout_s": 60}), sleeper(50))
        with anyio.fail_after(30):
            while not any(children for _, children in remote_templates().values()):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    await no_remote_candidate_left(timeout=10)
    assert remote.in_flight == 0
    again = await remote.evaluate(CIRCLES, CIRCLES.initial_code)
    assert again.correct


@on_module_loop
async def test_no_secrets_on_the_workers(remote):
    code = block(f"""
        import os
        raise RuntimeError(repr((os.environ.get("{SECRET}"), sorted(os.environ))))
    """)
    report = await remote.evaluate(CIRCLES, code)
    assert report.failed and report.error.startswith("RuntimeError: (None, ")
    assert "sk-must-not-reach-workers" not in report.error + (report.stdout_tail or "") + (report.stderr_tail or "")
    workers = {worker for worker, _ in remote_templates().values()}
    assert workers
    for worker in workers:  # the worker processes of a cluster evomcp started never got the key
        environ = Path(f"/proc/{worker}/environ").read_bytes()
        assert SECRET.encode() not in environ
    assert report.isolation and report.isolation == await remote.isolation()


@pytest.mark.parametrize("task_dir", ["fn_task", "script_task"])
@on_module_loop
async def test_task_directories_are_shipped_once_by_content(remote, task_dir, tmp_path):
    source = tmp_path / task_dir
    shutil.copytree(DATA / task_dir, source)
    task = resolve_task(str(source))
    digest = bundles.tree_digest(source)
    shutil.rmtree(bundles.cache_root() / digest, ignore_errors=True)
    packed = remote._bundles.packed
    async with LocalExecutor(slots=2) as local:
        for code in (task.initial_code, task.initial_code.replace("return 1.0", "return 2.5"),
                     task.initial_code.replace("return 1.0", "return 1/0")):
            here, there = await local.evaluate(task, code), await remote.evaluate(task, code)
            assert (there.correct, there.combined_score, there.failed) == (here.correct, here.combined_score,
                                                                          here.failed)
            assert there.public_metrics == here.public_metrics and there.error == here.error
    assert remote._bundles.packed == packed + 1  # packed once, shipped to each worker at most once
    assert (bundles.cache_root() / digest).is_dir()
    # an edited task directory is another digest: shipped again, never served stale
    evaluate = source / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace("- 3.0", "- 13.0").replace("-3.0", "-13.0"))
    changed = await remote.evaluate(task, task.initial_code)
    assert remote._bundles.packed == packed + 2
    assert changed.combined_score != -2.0 and (bundles.cache_root() / bundles.tree_digest(source)).is_dir()


# ---------------------------------------------------------------- worker loss


@on_module_loop
async def test_a_lost_worker_is_retried_once_elsewhere(remote):
    await remote.evaluate(CIRCLES, CIRCLES.initial_code)  # every worker warm
    retried, lost = remote.retried, len(remote.lost_workers)
    reports = []

    async def evaluate(code):
        reports.append(await remote.evaluate(CIRCLES.model_copy(update={"timeout_s": 30}), code))

    async with anyio.create_task_group() as tg:
        tg.start_soon(evaluate, sleeper(2))
        await kill_busy_worker(exclude=set())
    assert reports[0].correct and reports[0].combined_score == SEED_SCORE
    assert remote.retried == retried + 1 and len(remote.lost_workers) == lost + 1
    await no_remote_candidate_left()


@on_module_loop
async def test_a_second_loss_fails_the_program_with_the_workers_named(remote):
    await remote.evaluate(CIRCLES, CIRCLES.initial_code)
    reports = []

    async def evaluate():
        reports.append(await remote.evaluate(CIRCLES.model_copy(update={"timeout_s": 30}), sleeper(25)))

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(evaluate)
        first = await kill_busy_worker(exclude=set())
        await kill_busy_worker(exclude={first})
    report = reports[0]
    assert report.failed and not report.correct
    assert report.error.startswith("worker lost: ")
    named = remote.lost_workers[-2:]
    assert all(name in report.error for name in named), (named, report.error)
    assert time.monotonic() - started < 25  # not waited out: failed when the second worker died
    await no_remote_candidate_left()
    after = await remote.evaluate(CIRCLES, CIRCLES.initial_code)  # the run goes on
    assert after.correct


# ---------------------------------------------------------------- the CLI and a batch queue


def test_cli_refuses_a_cluster_without_a_backend(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--cluster", "auto",
                           "--db", str(tmp_path / "a.db")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--executor ray or --executor dask" in proc.stderr


@pytest.mark.skipif(not HAS["dask"], reason=f"dask is not installed: {INSTALL['dask']}")
def test_cli_run_on_a_local_dask_cluster(tmp_path):
    env = {**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--executor", "dask",
                           "--slots", "2", "--budget", "12", "--db", str(tmp_path / "a.db")],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = re.search(r"(\d+) candidates evaluated in all", proc.stderr)
    assert evaluated and int(evaluated.group(1)) >= 12 and "initial 1.609913140863308" in proc.stderr


FAKE_SBATCH = """#!/bin/bash
# sbatch stand-in: copies the job script (as sbatch does), runs it in the background, answers like SLURM
echo "$@" >> "{log}"
cp "${{@: -1}}" "{log}.job-$$.sh"
setsid bash "{log}.job-$$.sh" > "{log}.job-$$.out" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/bash
echo "scancel $@" >> "{log}"
kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
exit 0
"""


@pytest.mark.skipif(not HAS["dask"] or importlib.util.find_spec("dask_jobqueue") is None,
                    reason=f"dask-jobqueue is not installed: {INSTALL['dask']}")
@on_module_loop
async def test_a_slurm_queue_through_dask_jobqueue(tmp_path, monkeypatch):
    """`--cluster slurm` with sbatch/scancel stand-ins that run the job scripts on this machine."""
    import dask

    from evomcp.evaluators.backends import make_executor

    bin_dir, log = tmp_path / "bin", tmp_path / "slurm.log"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text.format(log=log))
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv(SECRET, "sk-must-not-reach-workers")
    config = {"jobqueue.slurm.cores": 1, "jobqueue.slurm.processes": 1, "jobqueue.slurm.memory": "2GiB",
              "jobqueue.slurm.walltime": "00:10:00", "jobqueue.slurm.python": sys.executable,
              "jobqueue.slurm.log-directory": None, "jobqueue.slurm.local-directory": str(tmp_path)}
    with dask.config.set(config):
        async with make_executor("dask", "slurm", slots=2) as executor:
            assert executor.slots == 2
            script = executor.cluster.job_script()
            assert f"unset {SECRET}" in script and "#SBATCH" in script
            with anyio.fail_after(120):
                report = await executor.evaluate(CIRCLES, CIRCLES.initial_code)
            assert report.correct and report.combined_score == SEED_SCORE
    calls = log.read_text().splitlines()  # 2 slots of 1 core: two jobs submitted, both cancelled at the end
    assert sum(line.endswith(".sh") for line in calls) == 2 and sum(line.startswith("scancel") for line in calls) == 2
    for script in tmp_path.glob("slurm.log.job-*.sh"):
        assert f"unset {SECRET}" in script.read_text()
