"""Islands: sub-populations that evolve apart and exchange their good programs now and then."""

from __future__ import annotations

import math

import numpy as np

from ..store import RunRecord
from .models import ProgramSummary, RunConfig
from .workspace import Workspace

MIGRATION_NOTE = "migrated_at_evaluation"


async def seed_islands(ws: Workspace, run: RunRecord) -> list[int]:
    """Copy the evaluated seed onto every island that does not hold it yet (all at once); the islands seeded.

    Also what resuming a run repairs: a process killed between the seed's record and its copies left
    islands without it."""
    seed_id, status, seeded, rows = await ws.archive.seed_placement(run.id)
    missing = [i for i in range(RunConfig.model_validate(run.config).num_islands) if i not in seeded]
    if seed_id is None or status != "evaluated" or not missing or rows > 1:  # copies made once (migration may
        return []                                                            # have moved them since): done
    await ws.archive.copy_program(seed_id, missing)
    ws.forget_population(run.id)  # reloaded with the copies on next use
    ws.novelty.forget(run.id)
    return missing


async def settle_seed(ws: Workspace, run: RunRecord, seed: ProgramSummary) -> None:
    """Once the seed is recorded: a failed seed stops its run; a good one is copied onto every island."""
    if seed.status == "failed":
        await ws.archive.set_run_status(run.id, "failed", "the seed failed its evaluation")
        await ws.archive.add_event(run.id, "run_stopped", {"reason": "seed failed"})
        return
    await seed_islands(ws, run)


def choose_island(ws: Workspace, run_id: int, config: RunConfig) -> int:
    """The island with the least work in flight, ties broken at random, so workers spread out."""
    busy = ws.tickets.islands_in_flight(run_id)
    loads = np.array([busy.get(i, 0) for i in range(config.num_islands)], dtype=float)
    candidates = np.flatnonzero(loads == loads.min())
    return int(ws.rng.choice(candidates))


async def migrate_if_due(ws: Workspace, run: RunRecord, config: RunConfig, evaluated: int) -> list[int]:
    """Every `migration_interval` evaluations, move the best share of each island to the next one.

    An island's best program never leaves it. Returns the ids that moved.
    """
    if config.num_islands < 2 or config.migration_interval <= 0:
        return []
    last = await ws.archive.get_note(run.id, MIGRATION_NOTE) or 0
    if evaluated - last < config.migration_interval:
        return []
    await ws.archive.set_note(run.id, MIGRATION_NOTE, evaluated)
    population = await ws.population(run.id)
    moves: dict[int, list[int]] = {}
    for island in range(config.num_islands):
        pool = population.top_ids(config.archive_size, island)
        count = max(1, math.ceil(config.migration_rate * len(pool))) if len(pool) > 1 else 0
        moves[(island + 1) % config.num_islands] = pool[1 : 1 + count]
    moved = []
    for destination, ids in moves.items():
        if ids:
            await ws.archive.move_programs(ids, destination)
            population.move(ids, destination)
            moved += ids
    if moved:
        ws.novelty.forget(run.id)  # rows changed islands: rebuild the matrices on next use
        await ws.archive.add_event(run.id, "migration", {"moved": moves, "at_evaluation": evaluated})
    return moved
