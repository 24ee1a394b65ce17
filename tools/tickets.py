"""Parents handed out by sample_parent and not yet used: counted as children in flight.

A ticket names one parent of one run. propose_candidate checks the ticket it is given: one never
issued for that run and parent, or one issued for another run or parent, is refused with the reason;
one that expired or was already used is accepted with a note. Open tickets live in memory, but each
token carries a MAC of its run and parent under a key of the archive, so a ticket issued before the
server restarted (or by another server process on the same archive, as a stdio host may start one per
call) is still recognised, and accepted with a note.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EvoError

REMEMBERED = 10_000  # closed tickets kept to tell "expired" or "used" from "never issued"


@dataclass
class Ticket:
    run_id: int
    parent_id: int
    island: int
    expires_at: float
    closed: str | None = None  # None while open, else why: "expired" or "used"
    program_id: int | None = None


class Tickets:
    def __init__(self, key: bytes = b"", clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # what expiry is measured on (tests move their own)
        self._key = key  # tokens are signed with it: see the module's docstring
        self._open: dict[str, Ticket] = {}
        self._closed: OrderedDict[str, Ticket] = OrderedDict()

    def issue(self, run_id: int, parent_id: int, island: int, ttl_s: float) -> str:
        self._expire()
        token = self._sign(run_id, parent_id, secrets.token_hex(4))
        self._open[token] = Ticket(run_id, parent_id, island, self._clock() + ttl_s)
        return token

    def check(self, token: str | None, run_id: int, parent_id: int, islands: list[int]) -> tuple[list[str], int]:
        """Refuse a ticket this server did not issue for this run and parent; notes on one that is not open. With
        the notes, the island the child goes to: the one the parent was sampled on while the parent is still a
        member of it, else the parent's least busy island (`islands`: the parent's, not empty)."""
        if token is None:
            return [], self._least_busy(run_id, islands)
        self._expire()
        ticket = self._open.get(token) or self._closed.get(token)
        if ticket is None and len(token) == 16 and hmac.compare_digest(self._sign(run_id, parent_id, token[:8]), token):
            return [f"ticket {token} was issued by an earlier server process on this archive; the proposal is "
                    f"accepted, but parents sampled before that process ended are not counted as in flight"], \
                self._least_busy(run_id, islands)
        if ticket is None:
            raise EvoError(
                f"ticket {token[:64]!r} was not issued by this server for parent {parent_id} of run {run_id}; "
                f"pass the ticket that the sample_parent call which gave you this parent returned, or propose "
                f"without a ticket")
        if (ticket.run_id, ticket.parent_id) != (run_id, parent_id):
            raise EvoError(
                f"ticket {token} was issued for parent {ticket.parent_id} of run {ticket.run_id} (island "
                f"{ticket.island}), but this proposal names parent {parent_id} of run {run_id}; pass "
                f"parent_id={ticket.parent_id} with it, the ticket of the sample_parent that gave parent "
                f"{parent_id}, or no ticket")
        notes = []
        if ticket.closed == "expired":
            notes.append(f"ticket {token} had expired (run config ticket_ttl_s); the proposal is accepted all the same")
        elif ticket.closed == "used":
            used_by = f" by program {ticket.program_id}" if ticket.program_id is not None else ""
            notes.append(f"ticket {token} was already used{used_by}; a ticket only keeps in-flight counts right, "
                         f"so the proposal is accepted all the same")
        if ticket.island in islands:
            return notes, ticket.island
        island = self._least_busy(run_id, islands)
        notes.append(f"parent {parent_id} moved from island {ticket.island} to island {island} (migration) "
                     f"since it was sampled; the child goes to island {island}")
        return notes, island

    def _least_busy(self, run_id: int, islands: list[int]) -> int:
        """Of a parent's islands (the seed is on every one), the one with the fewest tickets open, the lowest on
        a tie."""
        if len(islands) == 1:
            return islands[0]
        busy = self.islands_in_flight(run_id)
        return min(islands, key=lambda island: (busy.get(island, 0), island))

    def _sign(self, run_id: int, parent_id: int, nonce: str) -> str:
        mac = hmac.new(self._key, f"{run_id}:{parent_id}:{nonce}".encode(), hashlib.sha256).hexdigest()
        return nonce + mac[:8]

    def redeem(self, token: str | None, run_id: int, parent_id: int, program_id: int | None = None) -> bool:
        """Close the ticket; without a token, close the oldest open one for this parent."""
        if token is None:
            token = next((t for t, v in self._open.items() if v.run_id == run_id and v.parent_id == parent_id), None)
        ticket = self._open.get(token) if token else None
        if ticket is None or ticket.run_id != run_id or ticket.parent_id != parent_id:
            return False
        del self._open[token]
        ticket.closed, ticket.program_id = "used", program_id
        self._remember(token, ticket)
        return True

    def in_flight(self, run_id: int) -> Counter[int]:
        self._expire()
        return Counter(t.parent_id for t in self._open.values() if t.run_id == run_id)

    def islands_in_flight(self, run_id: int) -> Counter[int]:
        self._expire()
        return Counter(t.island for t in self._open.values() if t.run_id == run_id)

    def _remember(self, token: str, ticket: Ticket) -> None:
        self._closed[token] = ticket
        while len(self._closed) > REMEMBERED:
            self._closed.popitem(last=False)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, v in self._open.items() if v.expires_at < now]:
            ticket = self._open.pop(token)
            ticket.closed = "expired"
            self._remember(token, ticket)
