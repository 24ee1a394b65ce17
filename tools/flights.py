"""Evaluations in flight: they run in a task group of the workspace, not in the tool call that started them.

A call that starts an evaluation only waits for it, up to a bound. Cancelling the call, a host that gives up
on it or a dropped connection leave the evaluation running to its end, where it is recorded; only stopping
its run (`stop_all`) or the task's own time limit cut it short. Closing the workspace cancels what is
still in flight (the evaluation's own clean-up returns its program to `pending`, to be evaluated again).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .errors import EvoError

log = logging.getLogger("evomcp")

Progress = Callable[[float, str], Awaitable[None]]
Then = Callable[[Any], Awaitable[None]]


@dataclass(eq=False)
class Flight:
    """One program's evaluation, from its start to its record in the archive."""

    run_id: int
    program_id: int
    timeout_s: float  # the task's time limit
    best_before: float | None = None  # the run's best score when it started
    notes: list[str] = field(default_factory=list)
    then: Then | None = None  # called with the result once it is recorded, before anyone waiting wakes up
    started: float = field(default_factory=time.monotonic)
    done: anyio.Event = field(default_factory=anyio.Event)
    stop_reason: str | None = None  # set by stop(): the evaluation is recorded as failed with it
    result: Any = None  # what the evaluation returned (None when it was cut short)
    error: Exception | None = None  # what it raised
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop(self, reason: str) -> None:
        if not self.done.is_set() and self.stop_reason is None:
            self.stop_reason = reason
            self.scope.cancel()


class Evaluations:
    """The evaluations of a workspace, in a task group held by a task of its own.

    That task is started on first use, so the group's scope is entered and left by one task whichever
    task opened the workspace (test fixtures, portals), and no caller's cancellation reaches it.
    """

    def __init__(self, max_in_flight: int = 1000, keep_finished: int = 1000):
        self.max_in_flight = max_in_flight
        self._flights: dict[int, Flight] = {}
        self._finished: OrderedDict[int, Flight] = OrderedDict()
        self._keep = keep_finished
        self._tg: TaskGroup | None = None
        self._ready: anyio.Event | None = None
        self._closing: anyio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self._closed = False

    def running(self, program_id: int) -> Flight | None:
        return self._flights.get(program_id)

    def get(self, program_id: int) -> Flight | None:
        """The program's flight if it is in flight or finished recently in this process."""
        return self._flights.get(program_id) or self._finished.get(program_id)

    def of_run(self, run_id: int) -> list[Flight]:
        return [f for f in self._flights.values() if f.run_id == run_id]

    def check_room(self) -> None:
        """Refuse, with what to do, when the server already runs as many evaluations as it allows."""
        if len(self._flights) >= self.max_in_flight:
            raise EvoError(f"{len(self._flights)} evaluations are in flight on this server, its limit; wait_for "
                           f"some of them before proposing more")

    async def start(self, flight: Flight, body: Callable[[Flight], Awaitable[Any]]) -> Flight:
        """Run `body(flight)` in the workspace; a program already in flight is not started twice."""
        tg = await self._group()
        if flight.program_id in self._flights:
            return self._flights[flight.program_id]
        self.check_room()
        self._flights[flight.program_id] = flight
        tg.start_soon(self._fly, flight, body)
        return flight

    async def _fly(self, flight: Flight, body: Callable[[Flight], Awaitable[Any]]) -> None:
        try:
            try:
                with flight.scope:
                    flight.result = await body(flight)
            except Exception as exc:  # noqa: BLE001 - kept for whoever waits; one evaluation must not end the others
                flight.error = exc
                log.warning("evaluation of program %d failed: %s: %s", flight.program_id, type(exc).__name__, exc)
            if flight.then is not None and flight.result is not None:
                try:
                    await flight.then(flight.result)  # after the record: its failure is not the evaluation's
                except Exception as exc:  # noqa: BLE001
                    log.warning("after evaluating program %d: %s: %s", flight.program_id, type(exc).__name__, exc)
        finally:
            self._flights.pop(flight.program_id, None)
            self._finished[flight.program_id] = flight
            while len(self._finished) > self._keep:
                self._finished.popitem(last=False)
            flight.done.set()

    async def background(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `fn(*args)` in the workspace's group, like an evaluation but of no program (the sandbox probe):
        closing the workspace cancels it; its failure is logged, never raised to anyone."""
        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:  # noqa: BLE001
                log.warning("background %s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)

        (await self._group()).start_soon(guarded)

    async def stop_all(self, run_id: int, reason: str, wait_s: float = 10.0) -> list[Flight]:
        """Stop the run's evaluations and wait (up to `wait_s`) until they are recorded."""
        flights = self.of_run(run_id)
        for flight in flights:
            flight.stop(reason)
        with anyio.move_on_after(wait_s):
            for flight in flights:
                await flight.done.wait()
        return flights

    async def _group(self) -> TaskGroup:
        if self._closed:
            raise EvoError("the server is shutting down; no evaluation is started any more")
        if self._ready is None:
            self._ready, self._closing = anyio.Event(), anyio.Event()
            # asyncio (aiosqlite, which the archive runs on, is asyncio-only): a task no caller's scope encloses
            self._holder = asyncio.get_running_loop().create_task(self._hold())
        await self._ready.wait()
        assert self._tg is not None
        return self._tg

    async def _hold(self) -> None:
        assert self._ready is not None and self._closing is not None
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._ready.set()
            await self._closing.wait()
            tg.cancel_scope.cancel()

    async def aclose(self) -> None:
        """Cancel what is in flight and wait until each evaluation has cleaned up after itself."""
        self._closed = True
        if self._holder is None or self._closing is None:
            return
        self._closing.set()
        with anyio.CancelScope(shield=True):
            await self._holder
        self._tg = None


async def wait(flights: Sequence[Flight], wait_s: float | None, progress: Progress | None = None) -> None:
    """Until one of `flights` is done or `wait_s` seconds (None: no bound) have passed.

    With `progress`, a notification every second meanwhile: seconds waited, and how long each has run."""
    if not flights:
        return
    began = time.monotonic()
    deadline = began + (math.inf if wait_s is None else wait_s)
    while not any(f.done.is_set() for f in flights):
        now = time.monotonic()
        if now >= deadline:
            return
        if progress is not None:
            await progress(round(now - began, 1), describe(flights))
        with anyio.move_on_after(min(1.0, deadline - now) if progress is not None else deadline - now):
            await (flights[0].done.wait() if len(flights) == 1 else _any_done(flights))


def describe(flights: Sequence[Flight]) -> str:
    parts = [f"program {f.program_id} for {f.elapsed:.0f} s of at most {f.timeout_s:g} s" for f in flights]
    return "evaluating " + ", ".join(parts)


async def _any_done(flights: Sequence[Flight]) -> None:
    async with anyio.create_task_group() as tg:
        async def one(flight: Flight) -> None:
            await flight.done.wait()
            tg.cancel_scope.cancel()

        for flight in flights:
            tg.start_soon(one, flight)
