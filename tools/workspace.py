"""What every tool works on: the archive, the executor and the in-memory state of open runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluators.executor import LocalExecutor
from ..evaluators.task import Task, TaskError, resolve_task
from ..store import Archive, ProgramRecord, RunRecord
from .errors import EvoError
from .models import RunConfig
from .novelty import NoveltyIndex
from .tickets import Tickets


@dataclass
class Workspace:
    archive: Archive
    executor: LocalExecutor
    tickets: Tickets = field(default_factory=Tickets)
    novelty: NoveltyIndex = field(default_factory=NoveltyIndex)
    max_runs: int = 1000
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    _tasks: dict[int, Task] = field(default_factory=dict)

    async def run(self, run_id: int) -> RunRecord:
        run = await self.archive.get_run(run_id)
        if run is None:
            raise EvoError(f"no run with id {run_id}; call list_runs to see the runs, or start_run to make one")
        return run

    async def open_run(self, run_id: int) -> RunRecord:
        """A run that accepts new programs."""
        run = await self.run(run_id)
        if run.status != "running":
            raise EvoError(f"run {run_id} is {run.status}; it accepts no new programs (start a new run)")
        return run

    async def program(self, run_id: int, program_id: int) -> ProgramRecord:
        program = await self.archive.get_program(run_id, program_id)
        if program is None:
            raise EvoError(
                f"run {run_id} has no program {program_id}; call get_archive({run_id}) to list its programs"
            )
        return program

    def config(self, run: RunRecord) -> RunConfig:
        return RunConfig.model_validate(run.config)

    def task(self, run: RunRecord) -> Task:
        if run.id not in self._tasks:
            try:
                task = resolve_task(run.task_path)
            except TaskError as exc:
                raise EvoError(f"run {run.id}: its task cannot be loaded any more: {exc}") from None
            timeout = self.config(run).timeout_s
            self._tasks[run.id] = task.model_copy(update={"timeout_s": timeout}) if timeout else task
        return self._tasks[run.id]


@asynccontextmanager
async def open_workspace(db_path: str | Path, slots: int | None = None,
                         isolate: bool = True) -> AsyncIterator[Workspace]:
    """Open the archive and an executor; programs a dead process left `running` go back to `pending`.

    Candidates never see the archive: its files are hidden from them.
    """
    archive = await Archive.open(db_path)
    db = str(Path(db_path).resolve())
    executor = LocalExecutor(slots, isolate=isolate, hide=(db, f"{db}-wal", f"{db}-shm"))
    try:
        await archive.reset_unfinished()
        yield Workspace(archive, executor)
    finally:
        await executor.aclose()
        await archive.close()
