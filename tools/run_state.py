"""One run's state in this process, and the only way to write its programs and results.

SQLite is the source of truth. Beside it each open run keeps two in-memory indexes: the
population (tools/population.py: what selection, counts and elites read) and, for runs with a
novelty judge, the islands' newest embeddings (tools/novelty.py). Every write here goes to the
archive first and then to both indexes, so the two never disagree with the file; the answers the
tools and the driver need (best score, counts, cost) come from here too. One server process
writes an archive file at a time.
"""

from __future__ import annotations

from collections import OrderedDict

import anyio
import numpy as np

from ..evaluators.task import Task, TaskError, resolve_task
from ..store import Archive, EvaluationResult, ProgramRecord, RunRecord
from .errors import EvoError
from . import run_notes
from .models import RunConfig
from .novelty import WINDOW, EmbeddingIndex
from .population import Population

REMEMBERED = 512  # finished programs kept as read (parents and inspirations are read again and again)


class RunState:
    """A run's config, task and indexes. Built from its record; the indexes load on first use."""

    def __init__(self, archive: Archive, run: RunRecord, window: int = WINDOW) -> None:
        self.archive = archive
        self.run_id = run.id
        self.config = RunConfig.model_validate(run.config)  # a run's config never changes
        self._task_path = run.task_path
        self._task: Task | None = None
        self._window = window
        self._population: Population | None = None
        self._embeddings: EmbeddingIndex | None = None
        self._loading = anyio.Lock()  # two first uses at once load once (a second load would drop the first's writes)
        self._finished: OrderedDict[int, ProgramRecord] = OrderedDict()  # evaluated or failed, as stored
        self._migrated_at: int | None = None  # evaluations at the last migration (its note, read once)
        self._meta: run_notes.MetaNote | None = None  # the meta-recommendations (their note, read once)

    # what the run holds -----------------------------------------------------------

    def task(self) -> Task:
        """The run's task, with the run's own time limit if it set one."""
        if self._task is None:
            try:
                task = resolve_task(self._task_path)
            except TaskError as exc:
                raise EvoError(f"run {self.run_id}: its task cannot be loaded any more: {exc}") from None
            timeout = self.config.timeout_s
            self._task = task.model_copy(update={"timeout_s": timeout}) if timeout else task
        return self._task

    async def population(self) -> Population:
        """The population index (read it; write through this object's methods)."""
        if self._population is None:
            async with self._loading:
                if self._population is None:
                    self._population = Population.from_rows(await self.archive.population_rows(self.run_id),
                                                            await self.archive.memberships(self.run_id))
        return self._population

    async def reload(self) -> None:
        """Read the indexes back from the archive on next use (after a write that may have failed half-way)."""
        async with self._loading:
            self._population = None
            self._embeddings = None
            self._finished.clear()
            self._migrated_at = None
            self._meta = None

    async def nearest(self, island: int, vector: np.ndarray) -> tuple[int | None, float]:
        """The island's program nearest to an embedding among its newest ones, and the cosine similarity."""
        if self._embeddings is None:
            async with self._loading:
                if self._embeddings is None:
                    index = EmbeddingIndex(self._window)
                    index.load(await self.archive.embeddings(self.run_id, per_island=self._window))
                    self._embeddings = index
        return self._embeddings.nearest(island, vector)

    async def program(self, program_id: int) -> ProgramRecord | None:
        """A program of the run as stored (a finished one from memory: only this object changes it)."""
        if program_id in self._finished:
            self._finished.move_to_end(program_id)
            return self._finished[program_id]
        program = await self.archive.get_program(self.run_id, program_id)
        self._remember(program)
        return program

    async def programs(self, program_ids: list[int]) -> list[ProgramRecord]:
        """Programs of the run in the order asked, those it does not hold left out."""
        missing = [i for i in program_ids if i not in self._finished]
        read = {p.id: p for p in await self.archive.get_programs(self.run_id, missing)} if missing else {}
        found = [self._finished.get(i) or read.get(i) for i in program_ids]
        for program in read.values():
            self._remember(program)
        return [p for p in found if p is not None]

    def _remember(self, program: ProgramRecord | None) -> None:
        if program is not None and program.status in ("evaluated", "failed"):
            self._finished[program.id] = program
            if len(self._finished) > REMEMBERED:
                self._finished.popitem(last=False)

    # answers -----------------------------------------------------------------------

    async def best_score(self) -> float | None:
        return (await self.population()).best_score()

    async def best_program(self) -> ProgramRecord | None:
        top = (await self.population()).top_ids(1)
        return await self.archive.get_program(self.run_id, top[0]) if top else None

    async def candidates_evaluated(self) -> int:
        """Evaluations finished of candidates (programs with a parent): what evaluation budgets count."""
        return (await self.population()).candidates_evaluated()

    async def cost_usd(self) -> float:
        """Spent on model calls for this run, failed and refused proposals included (the calls are the record)."""
        return await self.archive.llm_cost(self.run_id)

    # writes --------------------------------------------------------------------------

    async def add_program(self, *, parent: ProgramRecord | None, island: int, code: str, code_hash: str,
                          patch_type: str, description: str | None, diff: str | None = None,
                          embedding: np.ndarray | None = None, fingerprint: str | None = None, cost_usd: float = 0.0,
                          operator: str | None = None) -> ProgramRecord:
        """Store a pending program (an exact duplicate raises store.DuplicateProgram) and index it."""
        population = await self.population()
        program = await self.archive.insert_program(
            run_id=self.run_id, parent_id=None if parent is None else parent.id, island=island,
            generation=0 if parent is None else parent.generation + 1, code=code, code_hash=code_hash, diff=diff,
            patch_type=patch_type, description=description,
            embedding=None if embedding is None else embedding.tobytes(), fingerprint=fingerprint,
            cost_usd=cost_usd, operator=operator)
        population.add(program.id, program.parent_id, program.island, program.generation)
        if embedding is not None and self._embeddings is not None:
            self._embeddings.add(program.island, program.id, embedding)
        return program

    async def mark(self, program_id: int, status: str) -> None:
        """A program's status without a result: `running` when its evaluation starts, `pending` again when it
        was cut short."""
        population = await self.population()
        self._finished.pop(program_id, None)
        await self.archive.set_program_status(program_id, status)  # type: ignore[arg-type]
        population.set_status(program_id, status)

    async def record_result(self, program_id: int, result: EvaluationResult) -> float:
        """Write an evaluation's result; returns the time it records as `evaluated_at`."""
        population = await self.population()
        self._finished.pop(program_id, None)
        evaluated_at = await self.archive.save_result(program_id, result)
        population.set_result(program_id, result.status, result.correct, result.combined_score)
        return evaluated_at

    async def move(self, moves: list[tuple[int, int, int]]) -> None:
        """Programs that migrate: (program id, from island, to island) each."""
        population = await self.population()
        await self.archive.move_programs(self.run_id, moves)
        population.move(moves)
        self._embeddings = None  # members changed islands: the matrices are rebuilt on next use

    async def last_migration(self) -> int:
        """The evaluations count at the run's last migration (0: none yet)."""
        if self._migrated_at is None:
            self._migrated_at = int(await self.archive.get_note(self.run_id, run_notes.MIGRATION) or 0)
        return self._migrated_at

    async def note_migration(self, evaluated: int) -> None:
        await self.archive.set_note(self.run_id, run_notes.MIGRATION, evaluated)
        self._migrated_at = evaluated

    async def meta(self) -> run_notes.MetaNote:
        """The newest meta-recommendations (every brief shows them)."""
        if self._meta is None:
            self._meta = await run_notes.meta(self.archive, self.run_id)
        return self._meta

    async def set_meta(self, note: run_notes.MetaNote) -> None:
        await self.archive.set_note(self.run_id, run_notes.META, note.model_dump())
        self._meta = note

    async def place_seed(self) -> list[int]:
        """Make the evaluated seed a member of every island it is not on yet (all at once); the islands it joined.

        Also what resuming a run repairs (a process killed between the seed's record and its placement), before
        any migration only: one may since have moved the seed off an island."""
        seed_id, status, seated = await self.archive.seed_placement(self.run_id)
        missing = [i for i in range(self.config.num_islands) if i not in seated]
        if seed_id is None or status != "evaluated" or not missing or await self.last_migration():
            return []
        await self.archive.join_islands(self.run_id, seed_id, missing)
        (await self.population()).join(seed_id, missing)
        self._embeddings = None
        return missing
