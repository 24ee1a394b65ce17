"""The sandboxed executor on real child processes: contracts, failures, secrets, clean-up."""

import contextlib
import os
import sys
import textwrap

import anyio
import pytest

from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.task import resolve_task
from evomcp.testing import procs

from conftest import DATA

CIRCLES = resolve_task("circle_packing_26")


def candidate(body: str) -> str:
    return "# EVOLVE-BLOCK-START\n" + textwrap.dedent(body) + "# EVOLVE-BLOCK-END\n"


async def leftovers(executor, seconds: float = 2.0) -> set[int]:
    """Our descendants that are not the executor's helpers, once the dying have gone."""
    return await procs.leftovers(lambda: executor.helper_pids, seconds)


@pytest.fixture
async def executor():
    async with LocalExecutor(slots=2) as ex:
        yield ex


async def test_builtin_seed_scores(executor):
    report = await executor.evaluate(CIRCLES, CIRCLES.initial_code)
    assert report.correct and not report.failed
    assert 1.0 < report.combined_score < 2.0
    assert report.public_metrics["n"] == 26


async def test_secrets_never_reach_the_candidate(executor, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    code = candidate("""
        import os
        def run_packing():
            print(sorted(os.environ))
            raise RuntimeError(repr([os.environ.get(k) for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")]))
    """)
    report = await executor.evaluate(CIRCLES, code)
    assert report.failed
    assert "[None, None]" in report.error
    assert "secret" not in (report.stdout_tail or "") + (report.stderr_tail or "") + report.error


LOOPS_WITH_A_CHILD = """
    import subprocess, time
    subprocess.Popen(["sleep", "300"])
    def run_packing():
        while True:
            time.sleep(0.01)
"""  # a candidate that never returns and has started a process of its own


async def test_timeout_kills_the_whole_group(executor):
    code = candidate(LOOPS_WITH_A_CHILD)
    report = await executor.evaluate(CIRCLES.model_copy(update={"timeout_s": 1.5}), code)
    assert report.failed and report.error.startswith("timeout")
    assert await leftovers(executor) == set() and executor.helper_pids <= procs.descendants()



async def test_cancelling_an_evaluation_kills_its_candidate(executor):
    """A cancelled evaluation (stop_run, shutdown) ends its candidate and everything it started at once."""
    code = candidate(LOOPS_WITH_A_CHILD)
    with anyio.move_on_after(2):
        await executor.evaluate(CIRCLES.model_copy(update={"timeout_s": 60}), code)
    again = await executor.evaluate(CIRCLES, CIRCLES.initial_code)  # its reply names the new spare child
    assert again.correct
    assert await leftovers(executor) == set() and executor.helper_pids <= procs.descendants()

def _ticks_since_boot(stat: str | None = None) -> int:
    """A process's start time from its /proc stat line (clock ticks since boot), or now's without one."""
    if stat is None:
        with open("/proc/uptime") as f:
            return int(float(f.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    return int(stat.rsplit(")", 1)[1].split()[19])


async def test_the_next_candidate_runs_in_the_spare_prepared_for_it():
    """The fast path: after a request the template prepares a spare child (namespaces, its root, the work
    directory of a request to come bound in, privileges dropped, seccomp), and the next candidate runs in
    that very process, locked down ahead in that directory. Without it every candidate would wait for a
    fresh fork and its lock-down, and no other test would notice."""
    code = candidate("""
        import os
        def run_packing():
            with open("/proc/self/stat") as f:
                print("STARTED", f.read(), "IN", os.getcwd(), "END")
            raise RuntimeError("reported")
    """)

    def reported(report) -> tuple[int, str]:
        stat, cwd = report.stdout_tail.split("STARTED ", 1)[1].split(" END", 1)[0].rsplit(" IN ", 1)
        return _ticks_since_boot(stat), cwd

    async with LocalExecutor(slots=1) as executor:
        first = await executor.evaluate(CIRCLES, code)
        work_root = os.path.dirname(reported(first)[1])
        spares = executor.helper_pids - {executor.template_pid}
        assert spares, "the template prepared no spare child"
        prepared = [int(procs.stat_fields(pid)[19]) for pid in spares]  # their start times, in clock ticks
        while _ticks_since_boot() < max(prepared) + 3:  # a child forked for the next request starts later
            await anyio.sleep(0.005)
        before = {}
        for name in os.listdir(work_root):
            with contextlib.suppress(FileNotFoundError):  # the first request's directory, being removed
                before[name] = os.listdir(os.path.join(work_root, name))
        started, cwd = reported(await executor.evaluate(CIRCLES, code))
    assert started <= max(prepared) + 1, (started, prepared)  # the spare's own process (or the one inside it)
    if first.isolation.startswith("namespaces"):  # only then does a spare lock down ahead (bubblewrap: when handed)
        # the spare locked down in the next request's directory before that request: the candidate's output
        # files were already there, made by it
        assert os.path.dirname(cwd) == work_root and cwd != reported(first)[1]
        assert "stdout.txt" in before.get(os.path.basename(cwd), []), (cwd, before)


async def test_crash_exit_and_exceptions_are_reasons(executor):
    segv = candidate("""
        import ctypes
        def run_packing():
            ctypes.string_at(0)
    """)
    report = await executor.evaluate(CIRCLES, segv)
    assert report.failed and "SIGSEGV" in report.error
    early_exit = candidate("""
        import sys
        def run_packing():
            sys.exit(0)
    """)
    report = await executor.evaluate(CIRCLES, early_exit)
    assert report.failed and "sys.exit" in report.error
    hard_exit = candidate("""
        import os
        def run_packing():
            os._exit(0)
    """)
    report = await executor.evaluate(CIRCLES, hard_exit)
    assert report.failed and "before returning a result" in report.error
    raises = candidate("""
        def run_packing():
            raise ValueError("bad idea")
    """)
    report = await executor.evaluate(CIRCLES, raises)
    assert report.failed and report.error == "ValueError: bad idea"


@pytest.mark.parametrize("ret,needle", [
    ("np.full((26, 2), np.nan), np.ones(26) * 0.01", "non-finite"),
    ("np.zeros((25, 2)) + 0.5, np.ones(25) * 0.01", "shape"),
    ("np.zeros((26, 2)) + 0.5, np.ones(26) * 0.01", "overlap"),
    ("np.zeros((26, 2)), np.ones(26) * 0.01", "not inside"),
    ("'perfect'", "must return"),
])
async def test_invalid_data_is_invalid_with_reason(executor, ret, needle):
    code = candidate(f"""
        import numpy as np
        def run_packing():
            return {ret}
    """)
    report = await executor.evaluate(CIRCLES, code)
    assert not report.correct and not report.failed
    assert needle in report.error


async def test_output_is_capped_and_tail_kept(executor):
    code = candidate("""
        import sys
        def run_packing():
            for i in range(200000):
                print("line", i)
            print("THE END")
            raise ValueError("done")
    """)
    report = await executor.evaluate(CIRCLES, code)
    assert len(report.stdout_tail) < 10000 and "THE END" in report.stdout_tail
    assert "earlier bytes dropped" in report.stdout_tail


@pytest.mark.parametrize("task_dir", ["fn_task", "script_task"])
async def test_task_directory_contracts(executor, task_dir):
    task = resolve_task(str(DATA / task_dir))
    assert task.kind == ("evaluate_fn" if task_dir == "fn_task" else "script")
    seed = await executor.evaluate(task, task.initial_code)
    assert seed.correct and seed.combined_score == pytest.approx(-2.0)
    assert seed.public_metrics["value"] == 1.0
    better = await executor.evaluate(task, task.initial_code.replace("return 1.0", "return 2.5"))
    assert better.combined_score == pytest.approx(-0.5)
    broken = await executor.evaluate(task, task.initial_code.replace("return 1.0", "return 1/0"))
    assert not broken.correct and "division by zero" in broken.error


async def test_template_death_fails_one_evaluation_and_the_next_works(executor):
    import signal

    import anyio

    await executor.evaluate(CIRCLES, CIRCLES.initial_code)
    slow = candidate("""
        import time
        def run_packing():
            time.sleep(20)
    """)
    reports = []

    async def evaluate_slow():
        reports.append(await executor.evaluate(CIRCLES, slow))

    async with anyio.create_task_group() as tg:
        earlier = set(procs.named("evomcp-cand"))  # the seed's candidate, if it has not quite gone
        tg.start_soon(evaluate_slow)
        with anyio.fail_after(30):  # until the slow candidate runs under the template
            while not set(procs.named("evomcp-cand", among=procs.descendants(executor.template_pid))) - earlier:
                await anyio.sleep(0.02)
        os.kill(executor.template_pid, signal.SIGKILL)
    assert reports[0].failed and "sandbox failure" in reports[0].error
    again = await executor.evaluate(CIRCLES, CIRCLES.initial_code)
    assert again.correct
    assert await leftovers(executor) == set() and executor.helper_pids <= procs.descendants()


async def test_scorer_process_is_separate_and_restarts(executor):
    import signal

    first = await executor.evaluate(CIRCLES, CIRCLES.initial_code)
    helpers = executor.helper_pids
    scorer = executor.scorer_pid
    assert {scorer, executor.template_pid} <= helpers and os.getpid() not in helpers
    assert scorer != executor.template_pid
    os.kill(scorer, signal.SIGKILL)
    second = await executor.evaluate(CIRCLES, CIRCLES.initial_code)
    assert second.correct and second.combined_score == first.combined_score
    assert scorer not in executor.helper_pids


ECHO_HELPER = """import json, os, sys, time
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    message = json.loads(line)
    print(json.dumps({"id": message["id"], "echo": True}), flush=True)
    if message.get("hang_up"):  # stops reading for good, alive: to the server, a helper whose exit it has not seen
        os.close(0)
        time.sleep(60)
"""


async def test_a_channel_restarts_a_helper_that_stopped_reading():
    """A request to a helper whose pipe broke since the last one (it died and its exit is not seen yet, or it
    closed its end) starts it again and gets its answer, instead of failing on the broken pipe."""
    from evomcp.evaluators.channel import JsonLineChannel

    channel = JsonLineChannel([sys.executable, "-c", ECHO_HELPER], env=None)
    try:
        for _ in range(3):
            request = await channel.send({"hang_up": True})
            assert (await channel.wait(request, "echo", 10))["echo"]
            first = channel.pid
            await anyio.sleep(0.3)  # the event loop sees the pipe close; the process runs on
            assert channel.pid == first
            request = await channel.send({})
            assert (await channel.wait(request, "echo", 10))["echo"] and channel.pid not in (first, None)
            assert first not in procs.descendants()  # the old one was killed
    finally:
        await channel.aclose()


async def test_openevolve_shaped_task_directory(executor):
    task = resolve_task(str(DATA / "openevolve_task"))
    assert task.kind == "evaluate_fn" and task.evaluate_path.endswith("evaluator.py")
    report = await executor.evaluate(task, task.initial_code)
    assert report.correct and report.combined_score == -2.0 and report.public_metrics["value"] == 1.0
    assert "value() returned 1.0" in report.text_feedback


def test_what_a_candidate_wrote_is_parsed_with_a_depth_limit():
    """JSON from the sandbox nests at most 64 levels below the top; deeper is a reason, not a crash."""
    from evomcp.evaluators.sandbox import MAX_JSON_DEPTH, parse_left_json

    assert MAX_JSON_DEPTH == 64
    value, error = parse_left_json(b"[" * 65 + b"]" * 65, "result")  # the top list, then 64 levels below
    assert error is None and value is not None
    assert parse_left_json(b"[" * 66 + b"]" * 66, "result")[1] == "result nests deeper than 64 levels"
    assert parse_left_json(b"[" * 200_000 + b"]" * 200_000, "result")[1] == "result nests deeper than 64 levels"
    assert parse_left_json(b"{bad", "result")[1].startswith("result held invalid JSON")
