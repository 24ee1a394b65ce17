"""What a candidate can use where it runs, measured there: a probe program evaluated like a candidate.

The probe runs through the executor's ordinary `evaluate` with the run's task (so under the task's
time and memory limits, in the same sandbox, on whichever machine the executor uses). It prints its
findings on stdout, one `EVOMCP-PROBE {json}` line each, and the evaluation's stdout tail carries
them back whatever the task's evaluator makes of the probe's result. Facts are cached per
workspace (one executor) and per task limits, so a run pays for the probe once; a run that starts or
resumes begins measuring them in the background (`prefetch`), outside the evaluation slots.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

import anyio

from .models import SandboxFacts

if TYPE_CHECKING:
    from ..evaluators.task import Task
    from .workspace import Workspace

MARK = "EVOMCP-PROBE "
PROBE_WAIT_S = 15.0  # how long the probe may wait for an evaluation slot (plus the task's time limit to run)
RETRY_S = 120.0  # after a probe that could not run
PACKAGES = ("numpy", "scipy", "numba", "sympy", "mpmath", "networkx", "sklearn", "pandas", "shapely", "cvxpy",
            "ortools", "pulp", "joblib", "torch", "jax")

PROBE = r'''
import importlib, importlib.metadata, importlib.util, json, os, platform, resource, socket, sys


def _emit(key, value):
    print("EVOMCP-PROBE " + json.dumps({key: value}), flush=True)


def _limit(which):
    soft = resource.getrlimit(which)[0]
    return None if soft == resource.RLIM_INFINITY else soft


_emit("python", platform.python_version())
try:
    _emit("cpus", len(os.sched_getaffinity(0)))
except (AttributeError, OSError):
    _emit("cpus", os.cpu_count())
memory = _limit(resource.RLIMIT_AS)
_emit("memory_limit_mb", None if memory is None else memory // 2**20)
_emit("cpu_seconds_limit", _limit(resource.RLIMIT_CPU))
_emit("thread_env", {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")})
try:
    _emit("network_interfaces", sorted(name for _, name in socket.if_nameindex()))
except OSError:
    _emit("network_interfaces", [])
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    _emit("can_fork", True)
except OSError:
    _emit("can_fork", False)
for name in PACKAGES:
    if importlib.util.find_spec(name) is None:
        _emit("package", [name, "not installed"])
        continue
    try:
        module = importlib.import_module(name)
        _emit("package", [name, str(getattr(module, "__version__", "") or "installed")])
    except BaseException as exc:
        _emit("package", [name, "fails to import: " + (type(exc).__name__ + ": " + str(exc))[:160]])
try:
    names = {(d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()}
except Exception:
    names = set()
_emit("other_installed", sorted(n for n in names if n and n not in PACKAGES)[:80])


def {entry}():
    return None
'''


def probe_code(entry: str | None) -> str:
    return f"PACKAGES = {PACKAGES!r}\n" + PROBE.replace("{entry}", entry or "main")


_MEASURED = set(SandboxFacts.model_fields) - {"measured", "note", "packages"}  # what the probe may report
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def parse(stdout: str) -> SandboxFacts | None:
    """The facts the probe printed, or None if it printed none or anything odd.

    The text comes back from the sandbox: under bubblewrap a candidate running at the same moment could
    append lines to it. So each fact may come once, package names must look like names, and anything
    else makes the whole report unusable rather than half believed."""
    facts: dict = {"packages": {}}
    for line in stdout.splitlines():
        if not line.startswith(MARK):
            continue
        try:
            item = json.loads(line[len(MARK):])
        except ValueError:
            return None
        if not isinstance(item, dict) or len(item) != 1:
            return None
        (key, value), = item.items()
        if key == "package" and isinstance(value, list) and len(value) == 2:
            name, version = map(str, value)
            if not _NAME.fullmatch(name) or name in facts["packages"] or len(facts["packages"]) >= len(PACKAGES):
                return None
            facts["packages"][name] = version[:200]
        elif key in _MEASURED and key not in facts:
            facts[key] = value
        else:
            return None
    if len(facts) == 1 and not facts["packages"]:
        return None
    try:
        return SandboxFacts(measured=True, **facts)
    except (ValueError, TypeError):
        return None


async def prefetch(ws: Workspace, task: Task) -> None:
    """Start measuring the facts for this task in the background (a run that starts or resumes), so the first
    sample_parent finds them measured or being measured instead of waiting for the probe."""
    key = _key(task)
    cached = ws.sandbox_facts.get(key)
    if (cached is not None and (cached[0] is None or time.monotonic() < cached[0])) or ws.sandbox_facts_lock.locked():
        return
    await ws.evaluations.background(sandbox_facts, ws, task)


def _key(task: Task) -> tuple:
    return (task.kind, task.source, task.timeout_s, task.memory_mb)


async def sandbox_facts(ws: Workspace, task: Task, wait: bool = True) -> SandboxFacts:
    """The facts for this task's limits on this workspace's executor, measured on first use.

    The probe runs beside the evaluation slots, within PROBE_WAIT_S plus the task's time limit; when it
    could not run, the answer says so and the probe is tried again after RETRY_S. A call that finds the
    probe running waits for it, unless `wait` is False (the driver: its first steps go on without the
    facts): it is then told the facts are being measured."""
    key = _key(task)
    cache = ws.sandbox_facts
    cached = cache.get(key)
    if cached is not None and (cached[0] is None or time.monotonic() < cached[0]):
        return cached[1]
    if ws.sandbox_facts_lock.locked():
        if not wait:
            return SandboxFacts(measured=False, note="not measured yet: the probe is running; a later "
                                                     "sample_parent shows its findings")
        async with ws.sandbox_facts_lock:  # the probe in flight is done when the lock is free
            pass
        cached = cache.get(key)
        if cached is not None:
            return cached[1]
    async with ws.sandbox_facts_lock:
        facts = await _measure(ws, task)
        retry_at = None if facts.measured else time.monotonic() + RETRY_S
        cache[key] = (retry_at, facts)
        return facts


async def _measure(ws: Workspace, task: Task) -> SandboxFacts:
    if task.language != "python":
        return SandboxFacts(measured=False, note=f"not measured (the probe is a Python program, the task's "
                                                 f"language is {task.language}); the time limit and the task's "
                                                 f"memory limit ({task.memory_mb} MB of address space a process) "
                                                 f"apply to the build and the program alike")
    with anyio.move_on_after(PROBE_WAIT_S + task.timeout_s):
        # outside the evaluation slots: one small job per task and process, which candidates never wait behind
        report = await ws.executor.evaluate(task, probe_code(task.entry), slot=False)
        facts = parse(report.stdout_tail or "")
        if facts is not None:
            return facts
        reason = (report.error or "it printed nothing the server could read").strip()[:300]
        return SandboxFacts(measured=False, note=f"not measured: the probe failed ({reason})")
    return SandboxFacts(measured=False, note=f"not measured yet: no evaluation slot came free within "
                                             f"{PROBE_WAIT_S:g} s; a later sample_parent tries again")
