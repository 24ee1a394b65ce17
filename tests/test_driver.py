"""The built-in driver against a real OpenAI-compatible HTTP server on 127.0.0.1 (evomcp.testing.fake_openai),
through the real `openai` client and the MCP surface."""

import re
import threading
import time

import anyio
import numpy as np
import pytest
from mcp import Client

from evomcp.server.app import build_server
from evomcp.server.driver import Driver, DriverConfig, Drivers
from evomcp.testing.fake_openai import Empty, FakeOpenAI, HTTPError, Invalid, Malformed, Reply, Timeout
from evomcp.tools import runs
from evomcp.tools.perturb import perturb
from evomcp.tools.workspace import open_workspace

CODE = re.compile(r"## (?:Current program|Program to fix) \(id (\d+).*?```python\n(.*?)```", re.DOTALL)


def parent_code(request: dict) -> str:
    prompt = request["messages"][-1]["content"]
    return CODE.search(prompt).group(2)


def good_model(seed: int = 0):
    """Answers every brief with a whole program whose ring constants are nudged (a plausible LLM)."""
    rng = np.random.default_rng(seed)

    def respond(request: dict) -> str:
        if "You review an evolutionary search" in request["messages"][-1]["content"]:
            return "Scratchpad: ring radii matter most.\n- nudge the outer ring radius\n- keep the clip margin small"
        change = None
        while change is None:
            change = perturb(parent_code(request), rng, max_changes=2)
        code, description = change
        return f"{description}\n\n```python\n{code}```\n"

    return respond


def bad_model(request: dict) -> str:
    return "I would try something cleverer here, but I will not write code."


def model(name, fake, **extra):
    return {"name": name, "model": name, "base_url": fake.base_url, "api_key_env": None, "max_retries": 0,
            "timeout_s": 5, "price_in_per_m": 1.0, "price_out_per_m": 2.0, **extra}


async def wait_for_driver(client, run_id, timeout=120):
    with anyio.fail_after(timeout):
        while True:
            status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
            if status["driver"] and status["driver"]["state"] not in ("running", "stopping"):
                return status
            await anyio.sleep(0.2)


async def test_bandit_prefers_the_better_model_and_the_score_rises(ws):
    ws.rng = np.random.default_rng(0)
    with FakeOpenAI() as fake:
        fake.add_model("good", good_model())
        fake.add_model("bad", bad_model)
        async with anyio.create_task_group() as tg:
            drivers = Drivers(ws, tg)
            async with Client(build_server(ws, drivers)) as client:
                with anyio.fail_after(10):  # start_run returns at once; the driver works in the background
                    status = (await client.call_tool("start_run", {
                        "task": "circle_packing_26", "config": {"novelty": False, "num_islands": 1},
                        "driver": {"models": [model("good", fake), model("bad", fake)], "perturb": False,
                                   "max_evaluations": 60, "concurrency": 2}})).structured_content
                assert status["driver"]["state"] == "running"
                run_id = status["run"]["run_id"]
                final = await wait_for_driver(client, run_id)
            tg.cancel_scope.cancel()
    driver = final["driver"]
    assert driver["state"] == "finished" and "evaluation budget" in driver["reason"]
    arms = driver["arms"]
    assert arms["good"]["pulls"] >= 1.5 * arms["bad"]["pulls"], arms
    assert final["best"]["combined_score"] > 1.609913140863308
    assert final["models"]["good"]["calls"] == arms["good"]["pulls"]
    assert final["cost_usd"] > 0


async def test_provider_failures_are_recorded_and_the_run_goes_on(ws):
    with FakeOpenAI() as fake:
        good = good_model(1)
        fake.script("flaky", [HTTPError(429, retry_after=0.1), HTTPError(500), HTTPError(503), Timeout(seconds=30),
                              Malformed(), Empty(), Invalid(),
                              Reply("<<<<<<< SEARCH\nthis line is not there\n=======\nx = 1\n>>>>>>> REPLACE")])
        fake.add_model("flaky", good)
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        config = DriverConfig(models=[model("flaky", fake, timeout_s=0.5)], perturb=False, max_evaluations=4,
                              concurrency=1)
        driver = Driver(ws, status.run.run_id, config)
        with anyio.fail_after(60):
            final = await driver.run()
    assert final.state == "finished" and final.evaluations == 4
    every = await ws.archive.events(status.run.run_id, limit=200)
    events = [e for e in every if e["kind"] == "proposal_failed"]
    reasons = " | ".join(e["data"]["reason"] for e in events)
    for needle in ("HTTP 500", "HTTP 503", "no answer within", "malformed reply", "empty reply", "does not match"):
        assert needle in reasons, (needle, reasons)
    # the rate limit failed no step: its call was tried again after the endpoint's Retry-After
    assert "429" not in reasons
    assert [e["data"]["retry_in_s"] for e in every if e["kind"] == "rate_limited"] == [0.1]
    calls = await ws.archive.llm_call_stats(status.run.run_id)
    # every call is recorded; the 5 transport-level failures and the body that is no chat completion (Invalid)
    # gave no answer, the rest were answered
    assert calls["flaky"]["calls"] == 4 + len(events) + 1
    assert calls["flaky"]["ok"] == calls["flaky"]["calls"] - 6, reasons


async def test_rate_limits_lower_the_calls_in_flight_and_fail_no_step(ws):
    """An endpoint that answers 429 (Retry-After) whenever more than two calls are in flight: the driver halves
    its calls in flight until the endpoint stops refusing, every step ends in a candidate, none fails."""
    state = {"now": 0, "limited": 0}
    guard = threading.Lock()
    good = good_model(3)

    def respond(request: dict):
        with guard:
            state["now"] += 1
            busy = state["now"]
        try:
            if busy > 2:
                with guard:
                    state["limited"] += 1
                return HTTPError(429, retry_after=0.05)
            threading.Event().wait(0.05)  # a model that takes a moment, so calls overlap
            return good(request)
        finally:
            with guard:
                state["now"] -= 1

    with FakeOpenAI() as fake:
        fake.add_model("limited", respond)
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        driver = Driver(ws, status.run.run_id, DriverConfig(
            models=[model("limited", fake)], perturb=False, max_evaluations=16, concurrency=8))
        with anyio.fail_after(120):
            final = await driver.run()
    assert final.state == "finished" and final.evaluations == 16 and final.refused == 0, final
    every = await ws.archive.events(status.run.run_id, limit=500)
    assert not [e for e in every if e["kind"] == "proposal_failed"]
    limited = [e["data"] for e in every if e["kind"] == "rate_limited"]
    limits = [e["calls_in_flight_limit"] for e in limited]
    assert limits and min(limits) <= 2, limits  # halved from 8 down to what the endpoint takes
    lowest = min(limits)
    after = limited[limits.index(lowest) + 1:]
    assert any(e["was"] > lowest for e in after), limited  # good calls gave calls in flight back, up to a 429
    assert state["limited"] == len(limits)
    calls = await ws.archive.llm_call_stats(status.run.run_id)
    assert calls["limited"]["calls"] - calls["limited"]["ok"] == state["limited"]  # each refusal recorded


async def test_retries_with_backoff_then_success(ws):
    with FakeOpenAI() as fake:
        fake.script("retrying", [HTTPError(429, retry_after=0.1), HTTPError(502)])
        fake.add_model("retrying", good_model(2))
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        driver = Driver(ws, status.run.run_id, DriverConfig(
            models=[model("retrying", fake, max_retries=3)], perturb=False, max_evaluations=1, concurrency=1))
        final = await driver.run()
        assert final.evaluations == 1 and final.refused == 0
        assert len(fake.calls("retrying")) == 3


async def test_authentication_failure_is_a_clear_error(ws, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "wrong")
    with FakeOpenAI(api_key="right") as fake:
        fake.add_model("m", good_model())
        status = await runs.start_run(ws, "circle_packing_26", config={"num_islands": 1})
        driver = Driver(ws, status.run.run_id, DriverConfig(
            models=[model("m", fake, api_key_env="FAKE_KEY")], perturb=False, max_evaluations=1, concurrency=1))
        with anyio.fail_after(30):
            final = await driver.run()
    events = [e for e in await ws.archive.events(status.run.run_id) if e["kind"] == "proposal_failed"]
    assert "refused the API key from $FAKE_KEY" in events[0]["data"]["reason"]
    assert "no usable arm left" in final.reason  # the model was disabled: the driver did not spin


async def test_budget_caps_are_kept(ws):
    with FakeOpenAI() as fake:
        fake.add_model("m", good_model(3))
        # evaluation cap with 3 workers: exactly the cap, never more
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        run_id = status.run.run_id
        final = await Driver(ws, run_id, DriverConfig(models=[model("m", fake)], perturb=False, max_evaluations=7,
                                                      concurrency=3)).run()
        assert final.evaluations == 7
        assert (await runs.get_run_status(ws, run_id)).evaluated == 1 + 7
        # cost cap: the worst case of calls in flight is reserved, so the cap is never exceeded
        status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
        run_id = status.run.run_id
        cap = 0.1
        final = await Driver(ws, run_id, DriverConfig(
            models=[model("m", fake, price_in_per_m=10.0, price_out_per_m=10.0, max_tokens=2000)],
            perturb=False, max_cost_usd=cap, concurrency=3)).run()
        spent = await ws.archive.llm_cost(run_id)
        assert 0 < spent <= cap and "cost cap" in final.reason


async def test_unpriced_model_is_refused_for_a_budgeted_run(ws):
    status = await runs.start_run(ws, "circle_packing_26", config={"num_islands": 1})
    with pytest.raises(Exception, match="has no price"):
        Driver(ws, status.run.run_id, DriverConfig(
            models=[{"name": "free", "model": "free", "api_key_env": None}], max_cost_usd=1.0))


async def test_perturb_alone_needs_no_model(ws):
    status = await runs.start_run(ws, "circle_packing_26")
    final = await Driver(ws, status.run.run_id, DriverConfig(max_evaluations=30, concurrency=2)).run()
    assert final.state == "finished" and final.arms["perturb"]["pulls"] >= 30
    assert (await runs.get_run_status(ws, status.run.run_id)).best.combined_score > 1.609913140863308


async def test_a_dead_endpoint_does_not_spin_forever(ws):
    with FakeOpenAI() as fake:
        fake.add_model("down", lambda request: HTTPError(503))
        status = await runs.start_run(ws, "circle_packing_26", config={"num_islands": 1})
        with anyio.fail_after(60):
            final = await Driver(ws, status.run.run_id, DriverConfig(
                models=[model("down", fake)], perturb=False, max_evaluations=5, max_idle_steps=6,
                concurrency=1)).run()
    assert final.state == "failed" and "6 steps in a row" in final.reason and "HTTP 503" in final.reason


async def test_embeddings_endpoint_and_novelty_judge(ws):
    """A run can embed with an endpoint and let an LLM judge accept near-copies the threshold would refuse."""
    from conftest import rings_patch

    from evomcp.server.ensemble import OpenAIProviders
    from evomcp.tools import steps
    from evomcp.tools.errors import EvoError

    ws.providers = OpenAIProviders(ws.archive)
    with FakeOpenAI() as fake:
        fake.script("judge", ["YES\nit changes the ring layout", "NO\nonly a constant moved"])
        endpoint = {"model": "emb", "base_url": fake.base_url, "api_key_env": None, "price_in_per_m": 0.1}
        judge = {"model": "judge", "base_url": fake.base_url, "api_key_env": None}
        status = await runs.start_run(ws, "circle_packing_26", config={
            "num_islands": 1, "embeddings": endpoint, "novelty_judge": judge, "novelty_threshold": 0.5})
        run_id, seed = status.run.run_id, status.best.id
        accepted = await steps.propose_candidate(ws, run_id, seed, patch=rings_patch(0.23, 0.43))
        assert "judge found it meaningfully different" in accepted.novelty.note
        with pytest.raises(EvoError, match="the judge said: NO"):
            await steps.propose_candidate(ws, run_id, seed, patch=rings_patch(0.24, 0.44))
        assert len(fake.calls(path="/embeddings")) == 3 and len(fake.calls("judge")) == 2
    calls = await ws.archive.llm_call_stats(run_id)
    assert calls["emb"]["calls"] == 3 and calls["judge"]["calls"] == 2 and calls["emb"]["cost_usd"] > 0
    with FakeOpenAI() as fake:
        fake.add_model("emb", lambda request: HTTPError(500))
        config = {"num_islands": 1, "embeddings": {**endpoint, "base_url": fake.base_url}}
        with pytest.raises(EvoError, match="embeddings endpoint failed"):
            await runs.start_run(ws, "circle_packing_26", config=config)


def timed_model(seconds: float, seed: int):
    """good_model behind a delay; records (start, end) of every call on the archive's clock (time.time)."""
    good, guard, calls = good_model(seed), threading.Lock(), []

    def respond(request: dict):
        started = time.time()
        threading.Event().wait(seconds)
        try:
            return good(request)
        finally:
            with guard:
                calls.append((started, time.time()))

    return respond, calls


async def drive_one_slot(db_path, respond, evaluations: int, concurrency: int):
    """A run of circle_packing_26 on one evaluation slot, driven by the model `respond`: the driver's final
    status and the run's candidates (report rows: times of creation and evaluation)."""
    with FakeOpenAI() as fake:
        fake.add_model("timed", respond)
        async with open_workspace(db_path, slots=1) as ws:
            status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 1})
            driver = Driver(ws, status.run.run_id, DriverConfig(
                models=[model("timed", fake)], perturb=False, max_evaluations=evaluations, concurrency=concurrency))
            with anyio.fail_after(120):
                final = await driver.run()
            return final, [p for p in await ws.archive.report_programs(status.run.run_id) if p["parent_id"]]


async def test_a_worker_calls_the_model_again_while_its_candidate_is_evaluated(db_path):
    """The pipeline with one worker and one slot: the next model call starts while the previous candidate
    is still being evaluated (a worker that waited for each evaluation could never overlap the two)."""
    respond, calls = timed_model(0.15, 4)
    final, programs = await drive_one_slot(db_path, respond, evaluations=10, concurrency=1)
    assert final.state == "finished" and final.evaluations == 10 and final.in_flight == 0
    starts = sorted(start for start, _ in calls)
    overlapped = sum(any(start < p["evaluated_at"] and start > p["created_at"] for start in starts)
                     for p in programs)
    assert overlapped >= 5, (overlapped, programs, calls)


async def test_stored_candidates_wait_for_a_slot_within_the_backlog(db_path):
    """Model replies faster than one slot evaluates: workers keep calling, and stored candidates waiting for
    the slot never exceed the backlog (twice the slots), which they reach."""
    respond, _ = timed_model(0.05, 5)
    final, programs = await drive_one_slot(db_path, respond, evaluations=24, concurrency=6)
    assert final.state == "finished" and final.evaluations == 24 and final.in_flight == 0
    assert len(programs) == 24 and all(p["status"] == "evaluated" for p in programs)
    moments = sorted([(p["created_at"], 1) for p in programs] + [(p["evaluated_at"], -1) for p in programs])
    outstanding = peak = 0
    for _, change in moments:
        outstanding += change
        peak = max(peak, outstanding)
    assert peak == 2, peak
    # the bandit learned from every step, after its result
    assert sum(arm["pulls"] for arm in final.arms.values()) == 24
