"""Scans of a large run (islands, operators, costs, the genealogy), kept until the run changes
(`store.readers.run_version`) and recomputed while it changes no sooner than `SLOW_EVERY` seconds or `SLOW_FACTOR`
times what the last one took: every poll for a small run, a tenth of the server's time at most for a huge one,
however many watch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..store import readers
from .workspace import Workspace

SLOW_EVERY = 0.5  # seconds between recomputations of a changing run's scans, at least
SLOW_FACTOR = 10  # ... and at least this many times what the last one took


@dataclass
class ScanCache:
    """Per (archive, run, what): the value, the run version it was computed at, when, and how long computing took;
    one computation at a time per value."""
    entries: dict[tuple, tuple[tuple, float, float, Any]] = field(default_factory=dict)
    locks: dict[tuple, anyio.Lock] = field(default_factory=dict)

    async def get(self, ws: Workspace, run_id: int, what: str, compute) -> Any:
        """The value of `what`; `compute(held value or None)` makes a new one (it may update the one held)."""
        key = (str(ws.archive.path), run_id, what)
        async with self.locks.setdefault(key, anyio.Lock()):  # many watchers, one computation
            return await self._get(ws, key, run_id, compute)

    async def _get(self, ws: Workspace, key: tuple, run_id: int, compute) -> Any:
        now = time.monotonic()
        held = self.entries.get(key)
        if held is not None and now - held[1] < max(SLOW_EVERY, SLOW_FACTOR * held[2]):
            return held[3]
        version = await readers.run_version(ws.archive, run_id)
        if held is not None and held[0] == version:
            self.entries[key] = (version, now, held[2], held[3])
            return held[3]
        value = await compute(held[3] if held is not None else None)
        self.entries[key] = (version, now, time.monotonic() - now, value)
        return value


CACHE = ScanCache()
