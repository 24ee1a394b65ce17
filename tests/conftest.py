import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client

from evomcp.tools.workspace import open_workspace

DATA = Path(__file__).with_name("data")

RINGS_PATCH = """<<<<<<< SEARCH
    rings = [(8, 0.22), (17, 0.42)]
=======
    rings = [(8, {a}), (17, {b})]
>>>>>>> REPLACE"""


# A real algorithmic change of the circle-packing seed (grow each radius into the gaps): novel, not a near-copy.
GROW_RADII = """<<<<<<< SEARCH
    return radii * (1 - 1e-9)
=======
    for i in range(n):
        gaps = [np.linalg.norm(centers[i] - centers[j]) - radii[j] for j in range(n) if j != i]
        radii[i] = min(radii[i], min(gaps))
    return radii * (1 - 1e-9)
>>>>>>> REPLACE"""


def rings_patch(a: float, b: float) -> str:
    return RINGS_PATCH.format(a=a, b=b)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "archive.db"


@pytest.fixture
async def ws(db_path):
    async with open_workspace(db_path, slots=2) as workspace:
        yield workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mcp_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/mcp"


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stderr.read().decode() if proc.stderr else f"exit code {proc.returncode}"
            raise AssertionError(f"server exited early: {output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


def start_http_server(db: Path, port: int, *extra: str) -> subprocess.Popen:
    """`evomcp serve --http --no-auth` on 127.0.0.1:`port` as a subprocess, listening once this returns.

    Its output goes to /dev/null: a long run would otherwise fill a pipe nobody reads and block the server."""
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--no-auth", "--port", str(port),
                             "--db", str(db), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"})
    try:
        wait_for_port(port, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, the graceful stop; returns the exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def stop_or_kill(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10) -> None:
    """Ask the server to stop with `sig`; SIGKILL it if it has not within `timeout` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_http_server(db: Path, port: int, *extra: str) -> Iterator[subprocess.Popen]:
    """start_http_server, stopped on leaving unless the test already stopped or killed it."""
    proc = start_http_server(db, port, *extra)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            stop_or_kill(proc, signal.SIGTERM, timeout=30)


async def start_driven_run(url: str, **arguments) -> int:
    """Calls start_run over streamable HTTP through the real MCP client; returns the new run's id."""
    async with Client(url) as client:
        result = await client.call_tool("start_run", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content["run"]["run_id"]


async def run_status(url: str, run_id: int) -> dict:
    """get_run_status through a fresh client, as the server may have been restarted since the last call."""
    async with Client(url) as client:
        return (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content


async def poll_run_status(url: str, run_id: int, until: Callable[[dict], bool], *, interval: float,
                          timeout: float | None = None) -> dict:
    """Reads the run's status every `interval` seconds until `until(status)` holds, and returns that status;
    fails after `timeout` seconds if one is given."""
    with anyio.fail_after(timeout):
        while not until(status := await run_status(url, run_id)):
            await anyio.sleep(interval)
    return status


def driver_finished(status: dict) -> bool:
    return status["driver"]["state"] == "finished"
