"""Parents handed out by sample_parent and not yet used: counted as children in flight."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass


@dataclass
class Ticket:
    run_id: int
    parent_id: int
    island: int
    expires_at: float


class Tickets:
    def __init__(self) -> None:
        self._open: dict[str, Ticket] = {}

    def issue(self, run_id: int, parent_id: int, island: int, ttl_s: float) -> str:
        self._expire()
        token = secrets.token_hex(8)
        self._open[token] = Ticket(run_id, parent_id, island, time.monotonic() + ttl_s)
        return token

    def redeem(self, token: str | None, run_id: int, parent_id: int) -> bool:
        """Close the ticket; without a token, close the oldest open one for this parent."""
        if token is None:
            token = next((t for t, v in self._open.items() if v.run_id == run_id and v.parent_id == parent_id), None)
        ticket = self._open.get(token) if token else None
        if ticket is None or ticket.run_id != run_id or ticket.parent_id != parent_id:
            return False
        del self._open[token]
        return True

    def in_flight(self, run_id: int) -> Counter[int]:
        self._expire()
        return Counter(t.parent_id for t in self._open.values() if t.run_id == run_id)

    def islands_in_flight(self, run_id: int) -> Counter[int]:
        self._expire()
        return Counter(t.island for t in self._open.values() if t.run_id == run_id)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, v in self._open.items() if v.expires_at < now]:
            del self._open[token]
