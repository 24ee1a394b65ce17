"""Helpers shared by the bench scripts: a server on a free port, CPU ticks and RSS from /proc.

The scripts run as `.venv/bin/python bench/x.py`, so this file's folder is on sys.path and
`import _common` finds it. tests/conftest.py keeps its own copies of the server helpers: the bench
scripts import nothing from tests/ but the fake OpenAI server (tests/fake_openai.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- an `evomcp serve --http` subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Returns once 127.0.0.1:port accepts connections; exits the bench if `proc` dies or never listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"evomcp serve --http exited early (exit code {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"evomcp serve --http did not start listening on port {port} within {timeout:g} s")


def serve_http(db: Path, port: int, *extra: str, env: dict[str, str] | None = None,
               stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """`evomcp serve --http --port PORT --db DB *extra` (log level WARNING), listening once this returns."""
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db", str(db),
                             *extra], stdout=subprocess.DEVNULL, stderr=stderr,
                            env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING", **(env or {})})
    try:
        wait_for_port(port, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


# ---------------------------------------------------------------- CPU and memory from /proc


def machine_ticks() -> tuple[float, float]:
    """(total, busy) CPU ticks of every core since boot (/proc/stat; busy: all but idle and iowait)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    return total, total - fields[3] - fields[4]


def own_ticks(reaped: bool = True) -> float:
    """CPU ticks of this process, plus those of the children it reaped if asked."""
    t = os.times()
    return (t.user + t.system + (t.children_user + t.children_system if reaped else 0.0)) * TICK


def process_ticks(pid: int | str | None, reaped: bool) -> float:
    """CPU ticks a live process used (plus those of the children it reaped, if asked); 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (float(v) for v in rest[11:15])
    return utime + stime + (cutime + cstime if reaped else 0.0)


def cpu_shares(before: tuple[float, float, float], after: tuple[float, float, float]) -> tuple[float, float, float]:
    """(busy, ours, others) as fractions of the machine's CPU time between two (total, busy, own) readings."""
    total, busy, own = (b - a for a, b in zip(before, after))
    if total <= 0:
        return 0.0, 0.0, 0.0
    return busy / total, min(own, busy) / total, max(busy - own, 0.0) / total


def rss_mb(pid: int | str | None = "self") -> float | None:
    """VmRSS of a process in MB; None if it is gone or unreadable."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
