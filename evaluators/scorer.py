"""Client side of the trusted scorer process (see scorer_worker.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

from .channel import JsonLineChannel
from .sandbox import base_environment
from ..results import Verdict


def numba_cache_dir() -> str:
    """Where the scorer caches its compiled kernels: a folder of the server's user that no candidate's
    view holds (never `__pycache__` beside the source, which a broken sandbox could poison)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "evomcp", "numba")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class Scorer:
    """Sends a candidate's returned data to the warm scorer process and reads the verdict."""

    def __init__(self, timeout_s: float = 120.0):
        self.timeout_s = timeout_s
        self._channel = JsonLineChannel([sys.executable, "-I", "-m", "evomcp.evaluators.scorer_worker"],
                                        env={**base_environment(), "NUMBA_CACHE_DIR": numba_cache_dir(),
                                             "EVOMCP_SERVER_PID": str(os.getpid())})

    @property
    def pid(self) -> int | None:
        return self._channel.pid

    async def aclose(self) -> None:
        await self._channel.aclose()

    async def score(self, task_name: str, value: Any) -> Verdict:
        for attempt in range(2):  # a scorer that died since the last request is restarted once
            request_id = await self._channel.send({"task": task_name, "value": value})
            try:
                reply = await self._channel.wait(request_id, "verdict", self.timeout_s)
            finally:
                self._channel.forget(request_id)
            if reply is None or "verdict" in reply:
                break
        if reply is None:
            await self._channel.aclose()  # a stuck scorer is replaced on the next request
            return Verdict(correct=False, error=f"scorer timeout: checking this result took over {self.timeout_s} s")
        if "verdict" not in reply:
            return Verdict(correct=False, error="scorer crash: the checker process died on this result")
        return Verdict.model_validate(reply["verdict"])
