"""`evomcp serve` as a real subprocess, driven over stdio and over streamable HTTP on 127.0.0.1."""

import os
import sqlite3
import subprocess
import sys

import pytest
from mcp import Client, StdioServerParameters

from conftest import rings_patch
from evomcp.testing.servers import free_port, mcp_url, stop_or_kill, wait_for_port


STEPS = [(0.23, 0.43), (0.24, 0.44), (0.25, 0.45), (0.26, 0.455), (0.27, 0.46), (0.28, 0.465), (0.2, 0.4),
         (0.25, 0.46), (0.255, 0.458), (0.26, 0.46)]


async def drive_ten_steps(client, db_path):
    status = (await client.call_tool("start_run", {"task": "circle_packing_26", "config": {"novelty": False, "num_islands": 1}})).structured_content
    run_id, parent = status["run"]["run_id"], status["best"]
    current = (0.22, 0.42)
    best = parent["combined_score"]
    for step, (a, b) in enumerate(STEPS, 1):
        patch = rings_patch(a, b).replace("(8, 0.22), (17, 0.42)", f"(8, {current[0]}), (17, {current[1]})")
        result = await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": parent["id"],
                                                              "patch": patch})
        assert not result.is_error, result.content[0].text
        out = result.structured_content
        child = out["program"]
        assert child["parent_id"] == parent["id"] and child["generation"] == step
        assert out["best_score_before"] == best
        if child["correct"]:
            assert out["is_new_best"] == (child["combined_score"] > best)
            best = max(best, child["combined_score"])
        parent, current = child, (a, b)
        page = (await client.call_tool("get_archive", {"run_id": run_id, "limit": 50})).structured_content
        assert len(page["programs"]) == step + 1
    status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
    assert status["best"]["combined_score"] == best
    # the archive file itself holds every program the client was told about
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT COUNT(*), MAX(combined_score) FROM programs WHERE run_id = ?", (run_id,)).fetchone()
    con.close()
    assert rows == (11, best)
    return best


async def test_stdio_subprocess_ten_steps(tmp_path):
    db = tmp_path / "stdio.db"
    params = StdioServerParameters(command=sys.executable, args=["-m", "evomcp", "serve", "--db", str(db)],
                                   env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"})
    async with Client(params) as client:
        best = await drive_ten_steps(client, db)
    assert best > 1.7  # wider rings beat the seed's 1.61


TOKEN = "test-token-0123456789"


def authed(url: str, token: str = TOKEN):
    """A streamable-HTTP transport that sends the bearer token."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    return streamable_http_client(url, http_client=create_mcp_http_client(
        headers={"Authorization": f"Bearer {token}"}))


@pytest.fixture
def http_server(tmp_path):
    port = free_port()
    db = tmp_path / "http.db"
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "EVOMCP_TOKEN": TOKEN})
    try:
        wait_for_port(port, proc)
        yield mcp_url(port), db
    finally:
        stop_or_kill(proc)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_subprocess_ten_steps(http_server, mode):
    url, db = http_server
    async with Client(authed(url), mode=mode) as client:
        best = await drive_ten_steps(client, db)
    assert best > 1.7


def test_example_client_script_runs(tmp_path):
    out = subprocess.run([sys.executable, "examples/drive_run.py", "--steps", "3", "--db", str(tmp_path / "e.db")],
                         capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    assert "best: program" in out.stdout


async def test_user_written_example_task(tmp_path):
    """examples/tasks/tsp_heuristic, written from scratch as a user would, runs and can improve."""
    from evomcp.tools import runs, steps
    from evomcp.tools.workspace import open_workspace

    task = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "tasks",
                        "tsp_heuristic")
    async with open_workspace(tmp_path / "tsp.db", slots=2) as ws:
        status = await runs.start_run(ws, task, config={"num_islands": 1})
        seed = status.best
        assert seed.correct and 0.5 < seed.combined_score < 1.5
        program = await ws.program(status.run.run_id, seed.id)
        two_opt = program.code.replace("    return tour\n", (
            "    improved = True\n"
            "    while improved:\n"
            "        improved = False\n"
            "        for i in range(1, n - 1):\n"
            "            for j in range(i + 1, n):\n"
            "                a, b = points[tour[i - 1]], points[tour[i]]\n"
            "                c, d = points[tour[j]], points[tour[(j + 1) % n]]\n"
            "                if math.dist(a, c) + math.dist(b, d) < math.dist(a, b) + math.dist(c, d) - 1e-12:\n"
            "                    tour[i:j + 1] = reversed(tour[i:j + 1])\n"
            "                    improved = True\n"
            "    return tour\n"))
        better = await steps.propose_candidate(ws, status.run.run_id, seed.id, code=two_opt)
        assert better.program.correct and better.is_new_best
        assert "mean tour length" in (await ws.program(status.run.run_id, better.program.id)).text_feedback


def test_autonomous_run_example_against_an_endpoint(tmp_path):
    from evomcp.testing.fake_openai import FakeOpenAI

    from test_driver import good_model

    with FakeOpenAI() as fake:
        fake.add_model("m", good_model(9))
        out = subprocess.run([sys.executable, "examples/autonomous_run.py", "--model", "m", "--base-url",
                              fake.base_url, "--no-key", "--budget", "6", "--db", str(tmp_path / "a.db")],
                             capture_output=True, text=True, timeout=180,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert out.returncode == 0, out.stderr
        assert "driver finished: evaluation budget of 6 reached" in out.stdout
        assert fake.calls("m")
