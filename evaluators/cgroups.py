"""A pids cgroup for the sandbox template and everything it forks, where the machine lets us make one.

It caps how many processes candidates can start (a fork bomb cannot exhaust the machine's
pids, which rlimits cannot promise for root). The template is moved in once; its children
inherit the cgroup at fork, because moving each child in costs ~10 ms on cgroup v1.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def _find_root() -> Path | None:
    for root in _ROOTS:
        parent = root / "evomcp"
        try:
            parent.mkdir(exist_ok=True)
            probe = parent / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            try:
                if (probe / "pids.max").exists():
                    return parent
            finally:
                probe.rmdir()
        except OSError:
            continue
    return None


class PidsCgroups:
    """Makes and removes `evomcp/<name>` cgroups with a pids.max; inert where unavailable."""

    def __init__(self, max_pids: int = 256):
        self.max_pids = max_pids
        self.root = _find_root()
        self.sweep()

    def sweep(self) -> None:
        """Remove cgroups left by server processes that died (kill -9), killing what is still in them."""
        if self.root is None:
            return
        for path in self.root.glob("*-*"):
            try:
                owner = int(path.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
                self.remove(path)

    @property
    def available(self) -> bool:
        return self.root is not None

    def create(self, name: str) -> Path | None:
        if self.root is None:
            return None
        path = self.root / name
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(self.max_pids))
        except OSError:
            return None
        return path

    def adopt(self, path: Path | None, pid: int) -> bool:
        """Move a process (and so its future children) into the cgroup."""
        if path is None:
            return False
        try:
            (path / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            return False

    @staticmethod
    def refused(path: Path | None) -> int:
        """How many forks the cgroup has refused so far."""
        if path is None:
            return 0
        try:
            events = (path / "pids.events").read_text().split()
            return int(events[events.index("max") + 1]) if "max" in events else 0
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def drain(path: Path | None, at_most: int, seconds: float = 5.0) -> None:
        """Wait until the cgroup holds at most `at_most` processes (a killed fork bomb is being reaped)."""
        if path is None:
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if int((path / "pids.current").read_text()) <= at_most:
                    return
            except (OSError, ValueError):
                return
            time.sleep(0.02)

    def remove(self, path: Path | None) -> None:
        """Kill every process still in the cgroup and remove it."""
        if path is None:
            return
        for _ in range(50):
            try:
                pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        try:
            path.rmdir()
        except OSError:
            pass
