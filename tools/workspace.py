"""What every tool works on: the archive, the executor and the in-memory state of open runs."""

from __future__ import annotations

import hashlib

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

from ..evaluators.executor import Executor, LocalExecutor, ReadOnlyExecutor
from ..evaluators.task import Task
from ..store import Archive, ProgramRecord, RunRecord
from .errors import EvoError
from .flights import Evaluations
from .models import RunConfig, SandboxFacts
from .run_state import RunState
from .providers import NoProviders, Providers
from .tickets import Tickets


@dataclass
class Workspace:
    archive: Archive
    executor: Executor
    tickets: Tickets = field(default_factory=Tickets)
    max_runs: int = 1000
    providers: Providers = field(default_factory=NoProviders)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    evaluations: Evaluations = field(default_factory=Evaluations)  # in flight, outliving the calls that started them
    contracts_recorded: set[int] = field(default_factory=set)  # runs whose scoring contract this process noted
    _states: dict[int, RunState] = field(default_factory=dict)  # the runs this process has used
    sandbox_facts: dict[tuple, tuple[float | None, SandboxFacts]] = field(default_factory=dict)  # sandbox_facts.py
    sandbox_facts_lock: anyio.Lock = field(default_factory=anyio.Lock)

    def state_of(self, run: RunRecord) -> RunState:
        """The run's state in this process (tools/run_state.py): its config, task and indexes."""
        if run.id not in self._states:
            self._states[run.id] = RunState(self.archive, run)
        return self._states[run.id]

    async def state(self, run_id: int) -> RunState:
        return self._states[run_id] if run_id in self._states else self.state_of(await self.run(run_id))

    async def run(self, run_id: int) -> RunRecord:
        run = await self.archive.get_run(run_id) if 0 < run_id < 2**63 else None
        if run is None:
            raise EvoError(f"no run with id {run_id}; call list_runs to see the runs, or start_run to make one")
        return run

    async def open_run(self, run_id: int) -> RunRecord:
        """A run that accepts new programs."""
        run = await self.run(run_id)
        if run.status != "running":
            raise EvoError(f"run {run_id} is {run.status}{f' ({run.status_reason})' if run.status_reason else ''}; "
                           f"it accepts no new programs until resume_run(run_id={run_id}) reopens it")
        return run

    async def program(self, run_id: int, program_id: int) -> ProgramRecord:
        in_range = 0 < run_id < 2**63 and 0 < program_id < 2**63
        program = await (await self.state(run_id)).program(program_id) if in_range else None
        if program is None:
            await self.run(run_id)  # an unknown run is the error to report first
            raise EvoError(
                f"run {run_id} has no program {program_id}; call get_archive({run_id}) to list its programs"
            )
        return program

    def config(self, run: RunRecord) -> RunConfig:
        return self.state_of(run).config

    def task(self, run: RunRecord) -> Task:
        return self.state_of(run).task()


def _ticket_key(db: Path) -> bytes:
    """What tickets are signed with: the same for every server process on this archive file."""
    try:
        info = db.stat()
        where = f"{db.resolve()}:{info.st_dev}:{info.st_ino}"
    except OSError:  # not a file (an in-memory archive): good for this process only
        where = f"{db}:{id(db)}"
    return hashlib.sha256(where.encode()).digest()


@asynccontextmanager
async def open_workspace(db_path: str | Path, slots: int | None = None, isolate: bool = True,
                         executor: Executor | None = None, reset: bool = True) -> AsyncIterator[Workspace]:
    """Open the archive and an executor; programs a dead process left `running` go back to `pending`.

    Candidates never see the archive: its files are hidden from them. A ready `executor` (e.g. a
    Ray or Dask backend) is used instead of a local one, and stays open: its owner closes it.
    `reset=False` for a look at an archive that a live server may be evaluating in (`evomcp show`):
    the archive is opened read-only (so a read-only file or disk can be read), its running programs
    stay running, and no sandbox is started (nothing is evaluated).
    """
    archive = await Archive.open(db_path, read_only=not reset)
    db = str(Path(db_path).resolve())
    archive_files = (db, f"{db}-wal", f"{db}-shm")
    own = executor is None
    if executor is None:
        executor = LocalExecutor(slots, isolate=isolate, hide=archive_files) if reset else ReadOnlyExecutor()
    else:
        executor.hide(*archive_files)
    ws = Workspace(archive, executor, tickets=Tickets(key=_ticket_key(Path(db))))
    try:
        if reset:
            await archive.reset_unfinished()
        yield ws
    finally:
        await ws.evaluations.aclose()  # what is still running returns to pending, to be evaluated again
        if own:
            await executor.aclose()
        await archive.close()
