"""The built-in driver: runs the evolution loop itself with the same tool functions an agent uses.

This version drives with the offline `perturb` operator; model-backed operators plug in
at `_propose` (sample_parent -> brief -> operator -> propose_candidate -> evaluate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ..tools import steps
from ..tools.errors import EvoError
from ..tools.models import ProposalResult
from ..tools.perturb import perturb
from ..tools.workspace import Workspace


@dataclass
class LoopStats:
    attempted: int = 0
    evaluated: int = 0
    rejected: int = 0
    improved: int = 0


async def drive(ws: Workspace, run_id: int, *, budget: int, concurrency: int = 2,
                on_result: Callable[[ProposalResult | None, LoopStats], None] | None = None) -> LoopStats:
    """Propose and evaluate up to `budget` candidates with `concurrency` workers."""
    stats = LoopStats()

    async def worker() -> None:
        while stats.attempted < budget:
            stats.attempted += 1
            result = await _propose(ws, run_id, stats)
            if on_result is not None:
                on_result(result, stats)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker)
    return stats


async def _propose(ws: Workspace, run_id: int, stats: LoopStats) -> ProposalResult | None:
    sampled = await steps.sample_parent(ws, run_id)
    change = perturb(sampled.parent.code, ws.rng)
    if change is None:
        stats.rejected += 1
        ws.tickets.redeem(sampled.ticket, run_id, sampled.parent.id)
        return None
    code, description = change
    try:
        result = await steps.propose_candidate(ws, run_id, sampled.parent.id, code=code, patch_type="full",
                                               description=description, ticket=sampled.ticket,
                                               operator="perturb")
    except EvoError:
        stats.rejected += 1
        ws.tickets.redeem(sampled.ticket, run_id, sampled.parent.id)
        return None
    stats.evaluated += 1
    if result.is_new_best:
        stats.improved += 1
    return result
