"""Evaluations longer than a host's patience: they outlive the calls that start them, no call waits longer
than its bound, and wait_for collects their results in bounded calls.

A task folder whose program sleeps DELAY seconds stands for a slow evaluation. The issue's own numbers (a
20 s evaluation, a client that gives up after 3 s) run once over stdio and once over HTTP, side by side so
that they cost one 20 s wait; the other cases use shorter sleeps.
"""

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from conftest import DATA
from evomcp.server.app import build_server
from evomcp.server.driver import Drivers
from evomcp.testing.servers import free_port, mcp_url, serve_http, stop_or_kill
from evomcp.tools.workspace import open_workspace

MODES = ["auto", "legacy"]

PROGRAM = '''# Slow on purpose: value() sleeps DELAY seconds, then returns VALUE (the score).
import time

# EVOLVE-BLOCK-START
DELAY = {delay!r}
VALUE = {value!r}
# EVOLVE-BLOCK-END


def value():
    time.sleep(max(0.0, DELAY))
    return VALUE
'''

EVALUATE = '''import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.value()), "correct": True}
'''


def delayed(delay: float, value: float) -> str:
    """A program of the slow task whose evaluation takes `delay` seconds and scores `value`."""
    return PROGRAM.format(delay=float(delay), value=float(value))


def slow_task(folder: Path, timeout_s: float = 60, seed_delay: float = 0.0) -> str:
    folder.mkdir(parents=True)
    (folder / "initial.py").write_text(delayed(seed_delay, 1.0))
    (folder / "evaluate.py").write_text(EVALUATE)
    (folder / "task.toml").write_text(f'name = "slow_value"\ndescription = "Return a big value."\n'
                                      f"timeout_s = {timeout_s}\n")
    return str(folder)


CONFIG = {"novelty": False, "num_islands": 1}


async def call_ok(client, name, args=None, **kw):
    result = await client.call_tool(name, args or {}, **kw)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def start(client, task: str, **extra) -> tuple[int, int]:
    status = await call_ok(client, "start_run", {"task": task, "config": CONFIG, **extra})
    return status["run"]["run_id"], status["best"]["id"]


async def wait_in_bounded_calls(client, run_id: int, ids: list[int], wait_s: float, limit_s: float = 60,
                                on_progress=None) -> tuple[dict[int, dict], list[float]]:
    """wait_for until every program of `ids` is finished; returns their results and how long each call took."""
    results, took = {}, []
    deadline = time.monotonic() + limit_s
    while set(results) != set(ids):
        assert time.monotonic() < deadline, f"still waiting for {set(ids) - set(results)}"
        began = time.monotonic()
        out = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [i for i in ids if i not in results],
                                                 "wait_s": wait_s}, progress_callback=on_progress)
        took.append(time.monotonic() - began)
        assert took[-1] < wait_s + 3, f"wait_for took {took[-1]:.1f} s with wait_s={wait_s}"
        for finished in out["finished"]:
            results[finished["program"]["id"]] = finished
        if out["unfinished"]:
            assert "wait_for" in out["next_step"], out["next_step"]
    return results, took


def test_the_sdk_offers_no_server_side_tasks_yet():
    """Where the SDK offers task-augmented tools/call, a long evaluation should be offered as an MCP task.
    mcp 2.3 offers it in neither era: its 2025-11-25 dispatch tables leave tasks/* out (the Task types are
    types only), and it ships no 2026-07-28 Tasks extension (SEP-2663). When this fails, that has changed."""
    import importlib.util

    from mcp_types.methods import CLIENT_REQUESTS

    assert not [method for method, _ in CLIENT_REQUESTS if method.startswith("tasks/")]
    assert importlib.util.find_spec("mcp.server.tasks") is None


@pytest.mark.parametrize("mode", MODES)
async def test_a_bound_of_2s_returns_running_with_the_next_step_and_wait_for_gets_the_result(ws, tmp_path, mode):
    task = slow_task(tmp_path / "slow")
    async with Client(build_server(ws), mode=mode) as client:
        run_id, seed = await start(client, task)
        progress = []

        async def on_progress(value, total, message):
            progress.append((value, message))

        began = time.monotonic()
        out = await call_ok(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                          "code": delayed(3, 2.0), "wait_s": 2},
                            progress_callback=on_progress)
        assert 1.9 < time.monotonic() - began < 3.2
        program = out["program"]
        assert program["status"] == "running" and program["combined_score"] is None
        assert f"wait_for(run_id={run_id}, program_ids=[{program['id']}])" in out["next_step"], out["next_step"]
        assert progress and all(f"evaluating program {program['id']}" in m for _, m in progress), progress
        assert (await call_ok(client, "get_run_status", {"run_id": run_id}))["evaluating"] == [program["id"]]

        quick = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [program["id"]], "wait_s": 0.2})
        assert quick["finished"] == [] and [p["id"] for p in quick["unfinished"]] == [program["id"]]
        assert quick["unfinished"][0]["status"] == "running" and "again" in quick["next_step"]

        progress.clear()
        done = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [program["id"]], "wait_s": 30},
                             progress_callback=on_progress)
        assert done["waited_s"] < 3 and done["unfinished"] == []
        (result,) = done["finished"]
        assert result["program"]["status"] == "evaluated" and result["program"]["combined_score"] == 2.0
        assert result["is_new_best"] and result["delta_to_parent"] == 1.0 and result["best_score_before"] == 1.0
        assert progress, "no progress notification while wait_for waited"
        values = [v for v, _ in progress]
        assert values == sorted(values) and len(set(values)) == len(values)
        assert (await call_ok(client, "get_run_status", {"run_id": run_id}))["evaluating"] == []


async def test_a_cancelled_call_leaves_its_evaluation_running_to_its_end(ws, tmp_path):
    task = slow_task(tmp_path / "slow")
    async with Client(build_server(ws)) as client:
        run_id, seed = await start(client, task)
        with anyio.move_on_after(0.7) as scope:
            await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                         "code": delayed(2, 3.0), "wait_s": 30})
        assert scope.cancelled_caught
        status = await call_ok(client, "get_run_status", {"run_id": run_id})
        (program_id,) = status["evaluating"]
        assert status["counts"] == {"evaluated": 1, "running": 1}
        # evaluate() on it joins the evaluation in flight instead of starting another one
        joined = await call_ok(client, "evaluate", {"run_id": run_id, "program_id": program_id, "wait_s": 0.2})
        assert joined["program"]["status"] == "running"
        out = await call_ok(client, "wait_for", {"run_id": run_id})  # no ids: the run's evaluations in flight
        assert [r["program"]["id"] for r in out["finished"]] == [program_id]
        assert out["finished"][0]["program"]["combined_score"] == 3.0
    rows = sqlite3.connect(ws.archive.path).execute(
        "SELECT status, combined_score FROM programs WHERE id = ?", (program_id,)).fetchall()
    assert rows == [("evaluated", 3.0)]
    assert await ws.archive.count_events(run_id, "evaluated") == 2  # evaluated once, not twice


async def test_stop_run_ends_a_running_evaluation_and_records_why(ws, tmp_path):
    task = slow_task(tmp_path / "slow", timeout_s=300)
    async with Client(build_server(ws)) as client:
        run_id, seed = await start(client, task)
        # stopped at once, before its evaluation got going: recorded as stopped too, not left pending
        early = await call_ok(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                            "code": delayed(120, 4.0), "wait_s": 0})
        await call_ok(client, "stop_run", {"run_id": run_id})
        first = await call_ok(client, "get_program", {"run_id": run_id, "program_id": early["program"]["id"]})
        assert first["status"] == "failed" and "stop_run" in first["error"], first
        await call_ok(client, "resume_run", {"run_id": run_id})

        out = await call_ok(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                          "code": delayed(120, 5.0), "wait_s": 0.5})
        program_id = out["program"]["id"]
        assert out["program"]["status"] == "running"
        began = time.monotonic()
        stopped = await call_ok(client, "stop_run", {"run_id": run_id})
        assert time.monotonic() - began < 10
        assert stopped["run"]["status"] == "stopped" and stopped["evaluating"] == []
        assert stopped["counts"] == {"evaluated": 1, "failed": 2}
        program = await call_ok(client, "get_program", {"run_id": run_id, "program_id": program_id})
        assert program["status"] == "failed" and program["combined_score"] is None
        assert "stopped after" in program["error"] and "stop_run" in program["error"], program["error"]
        waited = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [program_id], "wait_s": 5})
        assert waited["waited_s"] < 1 and waited["finished"][0]["program"]["status"] == "failed"
    assert await ws.archive.count_events(run_id, "evaluation_stopped") == 2


async def test_closing_the_server_returns_a_running_evaluation_to_pending(tmp_path):
    task = slow_task(tmp_path / "slow", timeout_s=300)
    db = tmp_path / "close.db"
    async with open_workspace(db, slots=1) as ws:
        async with Client(build_server(ws)) as client:
            run_id, seed = await start(client, task)
            out = await call_ok(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                              "code": delayed(120, 5.0), "wait_s": 0.3})
            assert out["program"]["status"] == "running"
        began = time.monotonic()
    assert time.monotonic() - began < 10  # the candidate was killed, not waited for
    con = sqlite3.connect(db)  # read as it was left, before any reopening resets anything
    assert con.execute("SELECT status FROM programs WHERE id = ?", (out["program"]["id"],)).fetchone() == ("pending",)
    con.close()
    async with open_workspace(db, slots=1) as ws:
        async with Client(build_server(ws)) as client:
            waited = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [out["program"]["id"]]})
            assert waited["waited_s"] < 1 and waited["unfinished"][0]["status"] == "pending"
            assert f"evaluate(run_id={run_id}" in waited["next_step"] and "resume_run" in waited["next_step"]
            resumed = await call_ok(client, "resume_run", {"run_id": run_id})  # evaluates what was left pending
            assert resumed["evaluating"] == [out["program"]["id"]]
            stopped = await call_ok(client, "stop_run", {"run_id": run_id})
            assert stopped["counts"] == {"evaluated": 1, "failed": 1}


async def test_a_slow_seed_is_awaited_the_same_way_and_its_driver_starts_once_it_is_evaluated(ws, tmp_path):
    task = slow_task(tmp_path / "slow", seed_delay=1.5)
    async with anyio.create_task_group() as tg, Client(build_server(ws, Drivers(ws, tg))) as client:
        status = await call_ok(client, "start_run", {
            "task": task, "config": {"novelty": False, "num_islands": 2}, "wait_s": 0.5,
            "driver": {"perturb": True, "max_evaluations": 1, "concurrency": 1}})
        run_id = status["run"]["run_id"]
        assert status["best"] is None and status["counts"] == {"running": 1}
        (seed,) = status["evaluating"]
        early = await client.call_tool("sample_parent", {"run_id": run_id})
        assert early.is_error and f"wait_for(run_id={run_id}, program_ids=[{seed}])" in early.content[0].text
        results, _ = await wait_in_bounded_calls(client, run_id, [seed], wait_s=10)
        assert results[seed]["program"]["status"] == "evaluated"
        with anyio.fail_after(30):
            while (status := await call_ok(client, "get_run_status", {"run_id": run_id}))["driver"]["state"] \
                    != "finished":
                await anyio.sleep(0.2)
        assert set(status["islands"]) == {"0", "1"}  # the seed joined island 1 once evaluated
        finished = status["counts"].get("evaluated", 0) + status["counts"].get("failed", 0)
        assert finished == 2 == status["evaluations_finished"]  # the seed (once, on both islands) and the driver's candidate
        tg.cancel_scope.cancel()


async def test_the_brief_the_prompt_and_the_schemas_explain_waiting(ws, tmp_path):
    slow = slow_task(tmp_path / "slow", timeout_s=120)
    async with Client(build_server(ws)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["wait_for"].annotations.read_only_hint is True
        for name in ("propose_candidate", "evaluate", "start_run", "wait_for"):
            assert tools[name].input_schema["properties"]["wait_s"]["default"] == 45.0, name
        run_id, _ = await start(client, slow)
        brief = (await call_ok(client, "sample_parent", {"run_id": run_id}))["brief"]
        assert "## Evaluation time" in brief and "up to 120 s" in brief and "wait_for(run_id" in brief
        fast_run, _ = await start(client, str(DATA / "fn_task"))  # 10 s: below the bound, nothing to explain
        assert "## Evaluation time" not in (await call_ok(client, "sample_parent", {"run_id": fast_run}))["brief"]
        prompt = (await client.get_prompt("evolve", {"task": "circle_packing_26"})).messages[0].content.text
        assert "wait_for" in prompt and "running" in prompt
        assert "wait_for" in (client.instructions or "")


# ---------------------------------------------------------------------------------------------------------------
# The numbers over real transports: a 20 s evaluation, a client that gives up after 3 s


HOST_PATIENCE_S = 3  # the client cancels its call after this long (a host's cut-off, scaled down)
EVALUATION_S = 20


async def _stdio_case(task: str, db: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "evomcp", "serve", "--db", str(db)],
                                   env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"})
    async with Client(params) as client:
        run_id, seed = await start(client, task)
        began = time.monotonic()
        with pytest.raises(MCPError) as gave_up:
            await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                         "code": delayed(EVALUATION_S, 2.0)},
                                   read_timeout_seconds=HOST_PATIENCE_S)
        assert "timed out" in str(gave_up.value)
        (program_id,) = (await call_ok(client, "get_run_status", {"run_id": run_id}))["evaluating"]
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        results, took = await wait_in_bounded_calls(client, run_id, [program_id], wait_s=6, on_progress=on_progress)
        assert results[program_id]["program"]["status"] == "evaluated", results
        assert results[program_id]["program"]["combined_score"] == 2.0
        assert len(took) >= 2, took  # bounded calls, not one long one
        assert progress and f"evaluating program {program_id}" in progress[0]
        assert time.monotonic() - began >= EVALUATION_S - 1


DROPPED_CLIENT = """
import sys, anyio
from mcp import Client

async def main(url, run_id, parent_id, code):
    async with Client(url) as client:
        print("calling", flush=True)
        await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": parent_id, "code": code})
        print("returned", flush=True)

anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
"""


async def _http_case(task: str, db: Path) -> None:
    port = free_port()
    proc = await anyio.to_thread.run_sync(serve_http, db, port, "--no-auth")  # meanwhile the stdio server starts
    try:
        await _over_http(task, mcp_url(port))
    finally:
        await anyio.to_thread.run_sync(stop_or_kill, proc, signal.SIGTERM, 30)


async def _over_http(task: str, url: str) -> None:
    async with Client(url) as client:
        run_id, seed = await start(client, task)
        with pytest.raises(MCPError):
            await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                         "code": delayed(EVALUATION_S, 2.0)},
                                   read_timeout_seconds=HOST_PATIENCE_S)
        (slow_id,) = (await call_ok(client, "get_run_status", {"run_id": run_id}))["evaluating"]
    # a client process killed in the middle of its call: the connection drops without a word
    async with await anyio.open_process([sys.executable, "-c", DROPPED_CLIENT, url, str(run_id), str(seed),
                                         delayed(4, 3.0)]) as proc:
        line = b""
        with anyio.fail_after(30):
            while b"calling" not in line:
                line += await proc.stdout.receive()
        async with Client(url) as watcher:  # until the server evaluates what the call proposed
            with anyio.fail_after(30):
                while len((await call_ok(watcher, "get_run_status", {"run_id": run_id}))["evaluating"]) < 2:
                    await anyio.sleep(0.05)
        proc.kill()
    assert b"returned" not in line
    async with Client(url) as client:  # a new connection, as after a host's restart
        evaluating = (await call_ok(client, "get_run_status", {"run_id": run_id}))["evaluating"]
        assert slow_id in evaluating and len(evaluating) == 2, evaluating
        (dropped_id,) = set(evaluating) - {slow_id}
        results, took = await wait_in_bounded_calls(client, run_id, [slow_id, dropped_id], wait_s=6)
        assert results[dropped_id]["program"]["combined_score"] == 3.0
        assert results[slow_id]["program"]["combined_score"] == 2.0
        assert len(took) >= 3, took


@pytest.mark.slow
async def test_a_20s_evaluation_outlives_a_client_that_gives_up_after_3s_over_stdio_and_http(tmp_path):
    task = slow_task(tmp_path / "slow")
    async with anyio.create_task_group() as tg:  # side by side: one 20 s wait for both transports
        tg.start_soon(_stdio_case, task, tmp_path / "stdio.db")
        tg.start_soon(_http_case, task, tmp_path / "http.db")


async def test_what_runs_after_an_evaluation_cannot_turn_it_into_an_error():
    """A flight's follow-up (start a driver once the seed is scored, say) runs after the record: if it
    fails, the evaluation still counts as done with its result, and waiting callers get that result."""
    from evomcp.tools.flights import Evaluations, Flight

    evaluations = Evaluations()

    async def broken_follow_up(result):
        raise RuntimeError("the driver could not start")

    async def evaluate(flight):
        return "recorded"

    try:
        flight = await evaluations.start(Flight(run_id=1, program_id=7, timeout_s=5, then=broken_follow_up), evaluate)
        with anyio.fail_after(5):
            await flight.done.wait()
        assert flight.result == "recorded" and flight.error is None
    finally:
        await evaluations.aclose()


async def test_the_sandbox_probe_starts_with_the_run_and_needs_no_slot(tmp_path):
    """The briefs' sandbox facts are measured from the start of a run, in the background, and the probe
    runs beside the evaluation slots: with the only slot busy, a probe for other limits still finishes."""
    from evomcp.tools import runs, sandbox_facts, steps

    task = slow_task(tmp_path / "slow", timeout_s=60)
    async with open_workspace(tmp_path / "a.db", slots=1) as ws:
        status = await runs.start_run(ws, task, config=CONFIG)
        run_id = status.run.run_id
        run_task = ws.task(await ws.run(run_id))
        with anyio.fail_after(60):  # nobody asked for the facts: start_run began measuring them
            while sandbox_facts._key(run_task) not in ws.sandbox_facts:
                await anyio.sleep(0.05)
        sampled = await steps.sample_parent(ws, run_id, wait_facts=False)
        assert sampled.sandbox.measured and "importable (tried)" in sampled.brief
        busy = await steps.propose_candidate(ws, run_id, sampled.parent.id, code=delayed(30, 2.0),
                                             ticket=sampled.ticket, wait_s=0)
        flight = ws.evaluations.get(busy.program.id)
        with anyio.fail_after(10):  # the slow candidate holds the only slot
            while ws.executor.in_flight < 1:
                await anyio.sleep(0.01)
        with anyio.fail_after(25):
            facts = await sandbox_facts.sandbox_facts(ws, run_task.model_copy(update={"timeout_s": 59}))
        assert facts.measured and not flight.done.is_set()  # measured while the only slot stayed busy
        await ws.evaluations.stop_all(run_id, "test over")


async def test_wait_for_answers_for_a_program_an_earlier_server_finished(tmp_path):
    """A program evaluated by an earlier server process comes back from wait_for whole: its feedback read from the
    archive (the best score before it is not known any more, and is said to be unknown)."""
    from evomcp.tools import runs, waiting
    from evomcp.tools.workspace import open_workspace

    db = tmp_path / "earlier.db"
    async with open_workspace(db, slots=1) as ws:
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False})
    seed = status.best
    async with open_workspace(db, slots=1) as ws:
        out = await waiting.wait_for(ws, status.run.run_id, [seed.id], wait_s=1)
    (finished,) = out.finished
    assert finished.program.id == seed.id and finished.best_score_before is None
    assert finished.text_feedback and "valid packing of 26 circles" in finished.text_feedback
