"""A run's history as its report shows it, read in one go: the run, its programs, its evaluations in the order they
finished, the best score after each, the proposals per arm, the best program and its lineage, what it cost.

Read through the archive's own queries and tools/trust.py; server/report only formats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..store import ProgramRecord, RunRecord, readers
from ..store.readers import EXTERNAL_ARM
from .trust import run_contracts
from .workspace import Workspace

__all__ = ["EXTERNAL_ARM", "RunData", "arm_counts", "is_scored", "load", "progress_points"]


@dataclass
class RunData:
    run: RunRecord
    programs: list[dict[str, Any]]  # every program, id order; `islands`: those it is a member of now
    evaluations: list[dict[str, Any]]  # programs evaluated or failed, in the order they finished
    progress: list[tuple[int, float]]  # as progress_points
    improvements: set[int]  # programs that raised the best score
    proposals: list[tuple[int, str]]  # (program id, arm), in proposal order
    best: ProgramRecord | None
    lineage: list[dict[str, Any]]
    seed: ProgramRecord | None  # the first program, when there is no best one to show
    contracts: list[str]  # the evaluation contracts that scored the run (tools/trust.py)
    spent_usd: float  # every model call of the run (proposals refused, the judge and embeddings included)


def is_scored(p: dict[str, Any]) -> bool:
    score = p["combined_score"]
    return bool(p["correct"]) and isinstance(score, (int, float)) and not isinstance(score, bool) and \
        math.isfinite(score)


def arm_counts(proposals: list[tuple[int, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, arm in proposals:
        counts[arm] = counts.get(arm, 0) + 1
    return counts


async def _get_run(ws: Workspace, run_id: int) -> RunRecord:
    run = await ws.archive.get_run(run_id)
    if run is None:
        raise ValueError(f"no run with id {run_id} in {ws.archive.path}")
    return run


def _evaluations(programs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The programs evaluated or failed, in the order they finished."""
    return sorted((p for p in programs if p["status"] in ("evaluated", "failed")),
                  key=lambda p: (p["evaluated_at"] or p["created_at"], p["id"]))


def _progress(evaluations: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], set[int]]:
    """The progress points, and the ids of the programs that raised the best score."""
    points, improvements = [], set()
    best = None
    for k, p in enumerate(evaluations, start=1):
        if is_scored(p) and (best is None or p["combined_score"] > best):
            best = p["combined_score"]
            improvements.add(p["id"])
        if best is not None:
            points.append((k, best))
    return points, improvements


async def load(ws: Workspace, run_id: int) -> RunData:
    """Everything the report of run `run_id` shows; ValueError if the archive has no such run."""
    archive = ws.archive
    run = await _get_run(ws, run_id)
    programs = await archive.report_programs(run_id)
    evaluations = _evaluations(programs)
    progress, improvements = _progress(evaluations)
    proposals = [(p["id"], p["operator"] or EXTERNAL_ARM) for p in programs if p["parent_id"] is not None]
    best_row = await archive.best_program(run_id)
    best = await archive.get_program(run_id, best_row["id"]) if best_row else None
    lineage = await archive.lineage(run_id, best.id) if best else []
    seed = await archive.get_program(run_id, programs[0]["id"]) if best is None and programs else None
    contracts = await run_contracts(archive, run)
    return RunData(run, programs, evaluations, progress, improvements, proposals, best, lineage, seed,
                   contracts, await archive.llm_cost(run_id))


async def progress_points(ws: Workspace, run_id: int) -> list[tuple[int, float]]:
    """(evaluation number, best score so far) for every evaluation from the first correct one on."""
    await _get_run(ws, run_id)
    finished = await readers.evaluations(ws.archive, run_id)  # in the order they finished, as _evaluations
    return _progress([{"id": i, "correct": correct, "combined_score": score}
                      for i, _, correct, score in finished])[0]
