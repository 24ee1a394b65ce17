"""`evomcp runs`, `show`, `export` and `report` only read an archive: none of them may start the sandbox's
fork server (`child.py --serve`) or the trusted scorer process, which a look at an archive has no use for.

Each command runs as a subprocess while a thread scans /proc every few milliseconds for such a helper among
its descendants. Either helper lives for at least its own start-up (the template imports numpy before it
says ready, the scorer compiles or loads its Numba kernels), far longer than a scan; the run that makes the
archive shows that the scan does find both.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evomcp.testing import procs

SCAN_EVERY_S = 0.002


def helpers_of(owner: int) -> set[str]:
    """The sandbox templates (under bubblewrap too) and scorer processes among the descendants of `owner`."""
    table = procs.table(with_cmdline=True)
    found = set()
    for pid in procs.descendants(owner, zombies=True, procs=table):
        argv = (table[pid].cmdline or "").split()
        if any(w.endswith("child.py") for w in argv) or (argv and os.path.basename(argv[0]) == "bwrap"):
            found.add(f"sandbox template {pid}: {' '.join(argv)[:300]}")
        elif "evomcp.evaluators.scorer_worker" in argv:
            found.add(f"scorer {pid}: {' '.join(argv)[:300]}")
    return found


def run_watched(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, set[str], int]:
    """Run `python -m evomcp ARGS`, scanning for helpers it starts until it exits; (result, helpers, scans)."""
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "120"})
    seen: set[str] = set()
    scans = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal scans
        while not done.is_set():
            seen.update(helpers_of(proc.pid))
            scans += 1
            time.sleep(SCAN_EVERY_S)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        watcher.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen, scans


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A small archive: a finished offline run of a built-in task (its seed and two candidates)."""
    db = tmp_path_factory.mktemp("read-only") / "look.db"
    made, helpers, _ = run_watched("run", "circle_packing_26", "--budget", "2", "--seed", "1", "--db", str(db))
    assert made.returncode == 0, made.stderr[-2000:]
    # the watcher does see the helpers of a command that evaluates (else the checks below would prove nothing)
    assert {h.split()[0] for h in helpers} == {"sandbox", "scorer"}, helpers
    return db


@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["show", "1", "--best"],
                                     ["export", "1", "--format", "csv"], ["report", "1"]],
                         ids=["runs", "show", "show-best", "export", "report"])
def test_a_read_only_command_starts_no_sandbox_and_no_scorer(archive, tmp_path, command):
    if command[0] == "report":
        command = [*command, "--output", str(tmp_path / "report.html")]
    out, helpers, scans = run_watched(*command, "--db", str(archive))
    assert out.returncode == 0, out.stderr[-2000:]
    assert scans >= 10  # the command ran long enough to be watched
    assert helpers == set(), f"`evomcp {' '.join(command)}` started {sorted(helpers)}"
