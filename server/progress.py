"""What `evomcp run` shows while it drives: a live panel on a terminal, a plain line every so often elsewhere.

Every figure comes from the archive's view of the run (the population index) or the driver's status, the
same numbers get_run_status, `evomcp show` and the report give: candidates evaluated (the seed is not one),
the best score so far, refused steps, cost, and the models that are failing and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..tools.workspace import Workspace
from .driver import Driver


@dataclass
class Snapshot:
    candidates: int  # evaluated since driving began (what --budget counts)
    budget: int
    best: float | None
    initial: float | None
    target: float | None
    refused: int
    cost_usd: float
    tries: dict[str, int]  # steps per arm, refused ones included
    failing: dict[str, str]  # model -> newest failure
    rate: float  # candidates per second since this process began driving

    def line(self, run_id: int) -> str:
        gain = f" ({self.best - self.initial:+.6g})" if self.best is not None and self.initial is not None else ""
        text = (f"run {run_id}: {self.candidates}/{self.budget} candidates evaluated, best "
                f"{self.best!r}{gain}, {self.refused} refused, {self.rate:.1f} candidates/s, ${self.cost_usd:.4f}")
        if self.failing:
            text += "; failing: " + "; ".join(f"{m}: {why}" for m, why in self.failing.items())
        return text

    def table(self) -> Table:
        t = Table.grid(padding=(0, 2))
        t.add_row("evaluated", f"{self.candidates}/{self.budget} candidates")
        t.add_row("best", repr(self.best) if self.best is not None else "-")
        if self.initial is not None and self.best is not None:
            t.add_row("gain", f"{self.best - self.initial:+.10g}")
        if self.target is not None:
            t.add_row("target", repr(self.target))
        t.add_row("refused", f"{self.refused} steps produced no candidate")
        t.add_row("cost", f"${self.cost_usd:.4f}")
        t.add_row("tries", Text("  ".join(f"{arm}:{n}" for arm, n in self.tries.items())))
        for model, why in self.failing.items():  # a provider's text: never read as markup
            t.add_row(Text("failing", style="red"), Text(f"{model}: {why}"))
        t.add_row("rate", f"{self.rate:.1f} candidates/s")
        return t


@dataclass
class RunProgress:
    console: Console
    ws: Workspace
    run_id: int
    budget: int
    initial: float | None
    target: float | None
    every_s: float  # between plain lines, where the console is not a terminal
    started: float = field(default_factory=time.monotonic)
    _first: int | None = None
    _told_failing: set[str] = field(default_factory=set)

    async def snapshot(self, driver: Driver) -> Snapshot:
        status = driver.status
        population = await (await self.ws.state(self.run_id)).population()
        if self._first is None:
            self._first = status.evaluations
        elapsed = time.monotonic() - self.started
        return Snapshot(candidates=status.evaluations, budget=self.budget, best=population.best_score(),
                        initial=self.initial, target=self.target, refused=status.refused, cost_usd=status.cost_usd,
                        tries={arm: int(stats["pulls"]) for arm, stats in (status.arms or {}).items()},
                        failing=dict(status.failing_models),
                        rate=(status.evaluations - self._first) / elapsed if elapsed > 0 else 0.0)

    def _tell_failing(self, snap: Snapshot) -> None:
        """A model that starts failing is said at once, on a line of its own (panel or not)."""
        for model, why in snap.failing.items():
            if model not in self._told_failing:
                self._told_failing.add(model)
                self.console.print(f"model {model} is failing: {why}", soft_wrap=True, markup=False)

    async def show(self, driver: Driver) -> None:
        """Until cancelled: refresh the panel (terminal) or print a line every `every_s` seconds."""
        if self.console.is_terminal:
            with Live((await self.snapshot(driver)).table(), console=self.console, refresh_per_second=4,
                      transient=False) as live:
                try:
                    while True:
                        await anyio.sleep(0.25)
                        snap = await self.snapshot(driver)
                        self._tell_failing(snap)
                        live.update(snap.table())
                finally:
                    with anyio.CancelScope(shield=True):
                        snap = await self.snapshot(driver)
                        self._tell_failing(snap)
                        live.update(snap.table())
        else:
            next_line = time.monotonic() + self.every_s
            try:
                while True:
                    await anyio.sleep(0.25)
                    snap = await self.snapshot(driver)
                    self._tell_failing(snap)
                    if time.monotonic() >= next_line:
                        next_line += self.every_s
                        self.console.print(snap.line(self.run_id), soft_wrap=True, markup=False)
            finally:  # a model that failed in the last quarter second is still said
                with anyio.CancelScope(shield=True):
                    self._tell_failing(await self.snapshot(driver))
