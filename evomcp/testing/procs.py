"""Processes on this machine as /proc shows them: who descends from whom, which are still alive, by name.

A zombie (state Z: exited, not yet reaped) is not alive. Every reader tolerates a process that goes
away while it is read: it is then skipped, or reported as gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import anyio


class Proc(NamedTuple):
    ppid: int
    state: str  # one letter: R running, S sleeping, D disk wait, Z zombie, ...
    cmdline: str | None = None  # arguments joined by spaces; None unless asked for


def stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...], utime at 11, rss at 21.
    Raises OSError if the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def state(pid: int | str) -> str | None:
    """The state letter of a process; None if it is gone."""
    try:
        return stat_fields(pid)[0]
    except (OSError, IndexError):
        return None


def comm(pid: int | str) -> str:
    """The name of a process (what `ps` shows, set by prctl(PR_SET_NAME)); "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int | str) -> str | None:
    """The command line of a process, arguments joined by spaces ("" for a zombie); None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def status(pid: int | str) -> dict[str, str]:
    """The fields of /proc/PID/status (Uid, CapEff, VmRSS, ...), values unparsed. Raises OSError if it is gone."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def table(with_cmdline: bool = False) -> dict[int, Proc]:
    """Every process: pid -> Proc. With `with_cmdline`, a process whose command line cannot be read is left out."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat_fields(entry)
            proc = Proc(int(fields[1]), fields[0])
        except (OSError, IndexError, ValueError):
            continue
        if with_cmdline:
            proc = proc._replace(cmdline=cmdline(entry))
            if proc.cmdline is None:
                continue
        found[int(entry)] = proc
    return found


def children(pid: int | str = "self") -> list[int]:
    """The direct children of a process, from /proc/PID/task/*/children (one read per thread)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(root: int | None = None, *, zombies: bool = False, procs: dict[int, Proc] | None = None) -> set[int]:
    """Processes below `root` (default: this process) at any depth; zombies too if asked. `procs` is a
    table() already read, to see several questions answered on the same snapshot."""
    procs = table() if procs is None else procs
    below: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        below.setdefault(proc.ppid, []).append(pid)
    found, todo = set(), [os.getpid() if root is None else root]
    while todo:
        for child in below.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found if zombies else {pid for pid in found if procs[pid].state != "Z"}


def alive(pids: Iterable[int]) -> list[int]:
    """Those of `pids` that still run (in the order given)."""
    return [pid for pid in pids if state(pid) not in (None, "Z")]


def survivors(pids: Iterable[int], seconds: float, interval: float = 0.05) -> list[int]:
    """Those of `pids` still alive after up to `seconds` (returns as soon as none is)."""
    pids, deadline = list(pids), time.monotonic() + seconds
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(interval)
    return left


def named(prefix: str, among: Iterable[int] | None = None) -> list[int]:
    """Live processes whose name starts with `prefix` (among `among`, else of the whole machine)."""
    pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit()) if among is None else among
    return [pid for pid in pids if comm(pid).startswith(prefix) and state(pid) not in (None, "Z")]


def by_cmdline(part: str) -> list[int]:
    """Live processes whose command line contains `part`."""
    return [pid for pid, proc in table(with_cmdline=True).items() if proc.state != "Z" and part in proc.cmdline]


async def leftovers(helpers: Callable[[], Iterable[int]] = tuple, seconds: float = 2.0, *,
                    skip_names: Iterable[str] = (), root: int | None = None) -> set[int]:
    """Live descendants of `root` (default: this process) but the pids helpers() names and processes named
    in `skip_names`, once the dying have gone: asked again until there are none or `seconds` have passed
    (a child killed as its result came in may take a moment to leave the table)."""
    skip = set(skip_names)
    deadline = time.monotonic() + seconds
    while True:
        extra = descendants(root) - set(helpers())
        if skip:
            extra = {pid for pid in extra if comm(pid) not in ("", *skip)}
        if not extra or time.monotonic() > deadline:
            return extra
        await anyio.sleep(0.02)


def describe(*pids: int) -> str:
    """Processes for a failure message: pid, name, state, parent, cgroup and command line of each."""
    return ", ".join(_describe(pid) for pid in pids)


def _describe(pid: int) -> str:
    try:
        fields = stat_fields(pid)
        groups = [line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                  if ":pids:" in line or line.startswith("0::")]
    except (OSError, IndexError):
        return f"pid {pid} (gone)"
    return (f"pid {pid} {comm(pid)} (state {fields[0]}, parent {fields[1]}, cgroup {', '.join(groups) or '?'}): "
            f"{(cmdline(pid) or '')[:120]}")
