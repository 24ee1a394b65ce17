"""Islands: sub-populations that evolve apart and exchange their good programs now and then."""

from __future__ import annotations

import math

import numpy as np

from .models import ProgramSummary, RunConfig
from .run_state import RunState
from .workspace import Workspace

async def settle_seed(ws: Workspace, state: RunState, seed: ProgramSummary) -> None:
    """Once the seed is recorded: a failed seed stops its run; a good one joins every island."""
    if seed.status == "failed":
        await ws.archive.set_run_status(state.run_id, "failed", "the seed failed its evaluation")
        await ws.archive.add_event(state.run_id, "run_stopped", {"reason": "seed failed"})
        return
    await state.place_seed()


def choose_island(ws: Workspace, run_id: int, config: RunConfig) -> int:
    """The island with the least work in flight, ties broken at random, so workers spread out."""
    busy = ws.tickets.islands_in_flight(run_id)
    loads = np.array([busy.get(i, 0) for i in range(config.num_islands)], dtype=float)
    candidates = np.flatnonzero(loads == loads.min())
    return int(ws.rng.choice(candidates))


async def migrate_if_due(ws: Workspace, state: RunState, evaluated: int) -> list[int]:
    """Every `migration_interval` evaluations, move the best share of each island's members to the next island.

    An island's best program never leaves it; the seed, a member of every island, may leave one. Returns the ids
    that moved.
    """
    config, run_id = state.config, state.run_id
    if config.num_islands < 2 or config.migration_interval <= 0:
        return []
    if evaluated - await state.last_migration() < config.migration_interval:
        return []
    await state.note_migration(evaluated)
    population = await state.population()
    moves: dict[int, list[int]] = {}
    for island in range(config.num_islands):
        pool = population.top_ids(config.archive_size, island)
        count = max(1, math.ceil(config.migration_rate * len(pool))) if len(pool) > 1 else 0
        moves[(island + 1) % config.num_islands] = pool[1 : 1 + count]
    moved = [(program_id, (destination - 1) % config.num_islands, destination)
             for destination, ids in moves.items() for program_id in ids]
    if moved:
        await state.move(moved)
        await ws.archive.add_event(run_id, "migration", {"moved": moves, "at_evaluation": evaluated})
    return [program_id for program_id, _, _ in moved]
