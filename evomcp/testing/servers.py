"""Servers on 127.0.0.1: a free port, waiting for a port to listen, an `evomcp serve --http` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mcp_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/mcp"


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0,
                  error: type[BaseException] = AssertionError) -> None:
    """Returns once 127.0.0.1:port accepts connections; raises `error` if `proc` exits first (with its stderr,
    if that is a pipe) or nothing listens within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stderr.read() if proc.stderr else f"exit code {proc.returncode}"
            raise error(f"server exited early: {output.decode() if isinstance(output, bytes) else output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise error(f"server did not start listening on port {port} within {timeout:g} s")


def serve_http(db: Path, port: int, *extra: str, env: dict[str, str] | None = None, stderr=subprocess.DEVNULL,
               timeout: float = 30.0, error: type[BaseException] = AssertionError) -> subprocess.Popen:
    """`evomcp serve --http --port PORT --db DB *extra` (log level WARNING) as a subprocess, listening once
    this returns (see wait_for_port for `timeout` and `error`).

    Its output goes to /dev/null unless `stderr` says otherwise: a long run would fill a pipe nobody reads
    and block the server."""
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db", str(db),
                             *extra], stdout=subprocess.DEVNULL, stderr=stderr,
                            env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING", **(env or {})})
    try:
        wait_for_port(port, proc, timeout, error)
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
    """serve_http, stopped with SIGTERM on leaving unless the caller already stopped or killed it."""
    proc = serve_http(db, port, *extra)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            stop_or_kill(proc, signal.SIGTERM, timeout=30)
