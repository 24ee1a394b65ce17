"""What the bench scripts share beyond evomcp.testing: CPU ticks and RSS, and servers started the bench's way.

The scripts run as `.venv/bin/python bench/x.py`, so this file's folder is on sys.path and `import _common`
finds it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from evomcp.testing import procs, servers

TICK = os.sysconf("SC_CLK_TCK")

# evomcp.testing.servers as the bench starts servers: up to 60 s to listen (the machine may be loaded), and a
# server that does not start ends the bench with the reason rather than a traceback
serve_http = functools.partial(servers.serve_http, timeout=60.0, error=SystemExit)
wait_for_port = functools.partial(servers.wait_for_port, timeout=60.0, error=SystemExit)


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
        rest = procs.stat_fields(pid)
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
        value = procs.status(pid).get("VmRSS")
    except OSError:
        return None
    return None if value is None else int(value.split()[0]) / 1024
