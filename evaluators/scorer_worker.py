"""The trusted scorer process: scores data returned by candidates, never runs candidate code.

Started by `evaluators.scorer.Scorer` as `python -I -m evomcp.evaluators.scorer_worker`.
It compiles (or loads from the cache) the Numba kernels once, says ready, then answers
one JSON request a line: {"id", "task", "value"} -> {"id", "verdict"}.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

from .tasks import BUILTIN_TASKS
from ..results import Verdict

PR_SET_PDEATHSIG = 1


def _warm_up() -> None:
    """Compile or load every task's kernel, so the first real request is fast."""
    for task in BUILTIN_TASKS.values():
        task.warm_up()


def _score(request: dict) -> Verdict:
    task = BUILTIN_TASKS.get(request.get("task", ""))
    if task is None:
        return Verdict.invalid(f"no built-in task {request.get('task')!r}")
    try:
        return task.scorer(request.get("value"))
    except Exception as exc:  # noqa: BLE001 - odd data must not stop the scorer
        return Verdict.invalid(f"the checker could not read this result ({type(exc).__name__}: {exc})")


def _die_with_parent() -> None:
    """SIGKILL when the server dies, even by kill -9 (Linux); if it already has (we were reparented before the
    signal was asked for), exit now. The server's pid comes in $EVOMCP_SERVER_PID: it may well be 1."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    expected = os.environ.get("EVOMCP_SERVER_PID", "")
    if expected.isdigit() and os.getppid() != int(expected):
        os._exit(0)


def main() -> None:
    _die_with_parent()
    _warm_up()
    out = sys.stdout
    try:
        out.write(json.dumps({"ready": True, "tasks": sorted(BUILTIN_TASKS)}) + "\n")
        out.flush()
        for line in sys.stdin:
            request = json.loads(line)
            verdict = _score(request)
            out.write(json.dumps({"id": request["id"], "verdict": verdict.model_dump(mode="json")}) + "\n")
            out.flush()
    except (BrokenPipeError, KeyboardInterrupt):  # the server went away: nothing to say, nobody to say it to
        os._exit(0)


if __name__ == "__main__":
    main()
