"""The HTTP transport's defences, over real HTTP on 127.0.0.1: tokens, DNS rebinding, limits."""

import os
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest
from mcp import Client

from evomcp.testing.servers import free_port, wait_for_port
from test_transports import TOKEN, authed

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def start(tmp_path, *extra, env=None):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db",
                             str(tmp_path / "sec.db"), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    wait_for_port(port, proc)
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def server(tmp_path):
    proc, port = start(tmp_path, "--max-runs", "2", env={"EVOMCP_TOKEN": TOKEN})
    yield f"http://127.0.0.1:{port}/mcp", tmp_path / "sec.db"
    stop(proc)


def runs_in(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        con.close()


async def test_requests_without_the_right_token_get_401_and_touch_nothing(server):
    url, db = server
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "start_run", "arguments": {"task": "circle_packing_26"}}}
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}):
            for body in (INIT, call):
                response = await http.post(url, json=body, headers={**HEADERS, **headers})
                assert response.status_code == 401, (headers, response.text)
    assert runs_in(db) == 0
    async with Client(authed(url)) as client:
        result = await client.call_tool("start_run", {"task": "circle_packing_26"})
        assert not result.is_error
    assert runs_in(db) == 1


async def test_dns_rebinding_and_size_limits(server):
    url, db = server
    async with httpx.AsyncClient() as http:
        bad_host = await http.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {TOKEN}",
                                                           "Host": "evil.example"})
        assert bad_host.status_code in (403, 421)
        bad_origin = await http.post(url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {TOKEN}",
                                                             "Origin": "http://evil.example"})
        assert bad_origin.status_code == 403
        huge = await http.post(url, content=b'{"jsonrpc": "2.0", "x": "' + b"a" * (5 * 1024 * 1024) + b'"}',
                               headers={**HEADERS, "Authorization": f"Bearer {TOKEN}"})
        assert huge.status_code == 413
    async with Client(authed(url)) as client:
        for _ in range(2):
            assert not (await client.call_tool("start_run", {"task": "circle_packing_26"})).is_error
        refused = await client.call_tool("start_run", {"task": "circle_packing_26"})
        assert refused.is_error and "limit of 2 runs" in refused.content[0].text
        page = await client.call_tool("get_archive", {"run_id": 1, "limit": 100000})
        assert page.is_error and "between 1 and 200" in page.content[0].text
    assert runs_in(db) == 2


async def test_a_token_is_generated_and_printed_when_none_is_given(tmp_path):
    proc, port = start(tmp_path, env={"EVOMCP_TOKEN": ""})
    try:
        line = proc.stderr.readline().decode()
        assert "Authorization: Bearer " in line
        token = line.split("Bearer ")[1].split("'")[0]
        async with Client(authed(f"http://127.0.0.1:{port}/mcp", token)) as client:
            assert (await client.list_tools()).tools
    finally:
        stop(proc)


def test_binding_beyond_loopback_needs_a_token(tmp_path):
    out = subprocess.run([sys.executable, "-m", "evomcp", "serve", "--http", "--host", "0.0.0.0", "--no-auth",
                          "--port", str(free_port()), "--db", str(tmp_path / "x.db")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "needs a token" in out.stderr
