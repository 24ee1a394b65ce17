"""Kill -9 the server in the middle of a driven run, start it again, and check nothing was lost."""

import contextlib
import json
import signal
import sqlite3
import threading

from conftest import driver_finished, poll_run_status, start_driven_run
from evomcp.testing.fake_openai import FakeOpenAI
from evomcp.testing.servers import free_port, mcp_url, running_http_server, stop_server
from test_driver import good_model, model


def gated_model(seed: int, open_calls: int):
    """good_model whose mutation calls after the first `open_calls` wait until `gate` is set: the run stands
    still mid-way (the meta review still answers), so a kill lands before the budget whatever the machine's
    speed. Returns (respond, gate, waiting) with `waiting` the calls held now."""
    respond, gate, guard = good_model(seed), threading.Event(), threading.Lock()
    counts = {"answered": 0, "waiting": 0}

    def gated(request: dict) -> str:
        if "You review an evolutionary search" not in request["messages"][-1]["content"]:
            with guard:
                counts["answered"] += 1
                held = counts["answered"] > open_calls
                counts["waiting"] += held
            if held:
                gate.wait(120)
                with guard:
                    counts["waiting"] -= 1
        return respond(request)

    return gated, gate, lambda: counts["waiting"]


@contextlib.contextmanager
def released(gate: threading.Event):
    """Open the gate on the way out, whatever happened: the fake model's server joins its threads on stopping,
    and a held call would keep a failing test waiting for two minutes."""
    try:
        yield
    finally:
        gate.set()


def archive_rows(db):
    con = sqlite3.connect(db)
    try:
        programs = con.execute("SELECT id, code_hash, status FROM programs ORDER BY id").fetchall()
        notes = dict(con.execute("SELECT key, value FROM notes").fetchall())
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    return programs, notes


async def test_sigkill_mid_run_then_resume(tmp_path):
    db, port = tmp_path / "restart.db", free_port()
    url = mcp_url(port)
    respond, gate, waiting = gated_model(5, open_calls=18)
    with FakeOpenAI() as fake, released(gate):
        fake.add_model("m", respond)
        with running_http_server(db, port, "--no-auth") as proc:
            run_id = await start_driven_run(url, task="circle_packing_26",
                                            config={"novelty": False, "num_islands": 2},
                                            # the model alone: every step after the restart asks it, so its
                                            # briefs show whether the scratchpad came back (with perturb beside
                                            # it, the bandit may well pick perturb for every later step)
                                            driver={"models": [model("m", fake)], "perturb": False,
                                                    "max_evaluations": 40, "concurrency": 2, "meta_every": 5})
            await poll_run_status(url, run_id, lambda status: status["evaluations_finished"] >= 10 and waiting() >= 2,
                                  interval=0.1, timeout=60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        gate.set()  # the calls the killed server made answer into closed connections; the next server's pass
        before, notes_before = archive_rows(db)
        assert len(before) < 1 + 40
        assert "bandit:arms" in notes_before and "meta" in notes_before
        pulls_before = sum(a["pulls"] for a in json.loads(notes_before["bandit:arms"])["arms"].values())
        calls_before = len(fake.calls("m"))

        with running_http_server(db, port, "--no-auth", "--resume-drivers"):
            status = await poll_run_status(
                url, run_id, lambda status: status["driver"]["state"] not in ("running", "stopping", "interrupted"),
                interval=0.2, timeout=120)
        after, notes_after = archive_rows(db)

    assert status["driver"]["state"] == "finished", status["driver"]
    # every program from before the kill is still there, unchanged in identity
    after_by_id = {row[0]: row for row in after}
    for program_id, code_hash, _ in before:
        assert after_by_id[program_id][1] == code_hash
    # no duplicates (the seed is one program on every island), and nothing left half-done
    hashes = [h for _, h, _ in after]
    assert len(hashes) == len(set(hashes))
    assert all(s in ("evaluated", "failed") for _, _, s in after), [row for row in after if row[2] not in
                                                                    ("evaluated", "failed")]
    # the driver went on from where it was: bandit state and scratchpad restored
    pulls_after = sum(a["pulls"] for a in json.loads(notes_after["bandit:arms"])["arms"].values())
    assert pulls_after > pulls_before
    assert len(fake.calls("m")) > calls_before
    later_prompts = [r.body["messages"][-1]["content"] for r in fake.calls("m")[calls_before:]]
    assert any("Recommendations from reviewing recent programs" in p for p in later_prompts)
    # the budget counts the run's candidates, so the restart did not start it over (2: in flight at the end)
    assert 40 <= status["candidates_evaluated"] <= 40 + 2


async def test_sigterm_marks_the_run_interrupted_and_it_resumes(tmp_path):
    db, port = tmp_path / "term.db", free_port()
    url = mcp_url(port)
    respond, gate, waiting = gated_model(3, open_calls=12)
    with FakeOpenAI() as fake, released(gate):
        fake.add_model("m", respond)
        with running_http_server(db, port, "--no-auth") as proc:
            run_id = await start_driven_run(url, task="circle_packing_26",
                                            driver={"models": [model("m", fake)], "perturb": False, "meta_every": 0,
                                                    "max_evaluations": 40, "concurrency": 2})
            await poll_run_status(url, run_id, lambda status: status["evaluations_finished"] >= 8 and waiting() >= 2,
                                  interval=0.1, timeout=60)
            assert stop_server(proc) == 0  # a graceful stop, with two model calls in flight
        gate.set()
        con = sqlite3.connect(db)
        assert con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "interrupted"
        # candidates cut short went back to pending (nothing half-written); the resumed driver evaluates them first
        assert con.execute("SELECT COUNT(*) FROM programs WHERE status = 'running'").fetchone()[0] == 0
        con.close()
        with running_http_server(db, port, "--no-auth", "--resume-drivers"):
            status = await poll_run_status(url, run_id, driver_finished, interval=0.2, timeout=120)
    assert status["run"]["status"] == "running" and 40 <= status["candidates_evaluated"] <= 40 + 2
    assert status["counts"].get("pending", 0) == 0
