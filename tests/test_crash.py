"""Crash safety: kill -9 the server 10 times during one driven run (bench/crash.py does 40); after every restart the archive is
intact, nothing a client saw is lost or duplicated, no evaluation is redone, no child outlives its
server, and the run still reaches its budget."""

import random
import signal
import sqlite3
import time

import anyio
from mcp import Client

from conftest import driver_finished, poll_run_status, start_driven_run
from evomcp.testing import procs
from evomcp.testing.servers import free_port, mcp_url, serve_http, stop_server

KILLS = 10
BUDGET = 120


def sandbox_processes(server_pid: int) -> list[int]:
    """Live sandbox processes of one server (its template and the candidates it forked)."""
    return procs.by_cmdline(f"evaluators/child.py --owner {server_pid} ")


def snapshot(db):
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT id, code_hash, status, evaluated_at, generation FROM programs").fetchall()
    finally:
        con.close()
    return {r[0]: r for r in rows}


async def told_about(url, run_id):
    """Program ids and statuses a client reads through the MCP surface."""
    async with Client(url) as client:
        seen, cursor = {}, None
        while True:
            args = {"run_id": run_id, "limit": 200, "order": "oldest"}
            if cursor:
                args["cursor"] = cursor
            page = (await client.call_tool("get_archive", args)).structured_content
            seen.update({p["id"]: p["status"] for p in page["programs"]})
            cursor = page["next_cursor"]
            if not cursor:
                return seen


async def test_ten_kills_during_one_run(tmp_path):
    rng = random.Random(11)
    db, port = tmp_path / "crash.db", free_port()
    url = mcp_url(port)
    proc = serve_http(db, port, "--no-auth")
    run_id = await start_driven_run(url, task="circle_packing_26",
                                    driver={"perturb": True, "max_evaluations": BUDGET, "concurrency": 2})
    seen: dict[int, str] = {}
    evaluated_before: dict[int, float] = {}
    for kill in range(KILLS):
        await anyio.sleep(rng.uniform(0.2, 0.8))
        seen.update(await told_about(url, run_id))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while sandbox_processes(proc.pid) and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert not sandbox_processes(proc.pid), f"sandbox processes outlived the server after kill {kill + 1}"
        rows = snapshot(db)
        for program_id in seen:  # everything a client was told about survived
            assert program_id in rows, (kill, program_id)
        for program_id, evaluated_at in evaluated_before.items():  # and was not evaluated again
            assert rows[program_id][3] == evaluated_at
        evaluated_before.update({i: r[3] for i, r in rows.items() if r[2] in ("evaluated", "failed")})
        proc = serve_http(db, port, "--no-auth", "--resume-drivers")
    try:
        status = await poll_run_status(url, run_id, driver_finished, interval=0.3, timeout=180)
    finally:
        stop_server(proc)
    rows = snapshot(db)
    hashes = [r[1] for r in rows.values() if r[4] > 0]
    assert len(hashes) == len(set(hashes)), "a program was stored twice"
    assert all(r[2] in ("evaluated", "failed") for r in rows.values())
    done = sum(1 for r in rows.values() if r[4] > 0)
    assert BUDGET <= done <= BUDGET + 2 * 2, (done, status["driver"])
    assert "evaluation budget" in status["driver"]["reason"]
    assert not sandbox_processes(proc.pid)
