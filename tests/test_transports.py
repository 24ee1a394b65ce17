"""`evomcp serve` as a real subprocess, driven over stdio and over streamable HTTP on 127.0.0.1."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from mcp import Client, StdioServerParameters

from conftest import free_port, rings_patch

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


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


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
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp", db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
