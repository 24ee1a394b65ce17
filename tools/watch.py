"""A run as someone watching it sees it: every run's row, a run's state now and its evaluations since a cursor.

Every function takes a read-only `Workspace` (`open_workspace(db, reset=False)`: a read-only archive, no sandbox)
and returns plain data (JSON-able dicts) or records; server/web renders and routes them. The records are
re-exported here, so the web view imports nothing of the store.
"""

from __future__ import annotations

import math
from typing import Any

from ..store import ProgramRecord, RunRecord, StorageError, readers
from . import run_notes
from .scan_cache import CACHE
from .trust import all_contracts, describe, run_contracts, scoring
from .workspace import Workspace

__all__ = ["NotFound", "ProgramRecord", "RunRecord", "StorageError", "finite", "live", "program_record", "run_record",
           "runs_list"]

MAX_DOTS = 3000  # scores sent with a run's first live answer (thinned evenly beyond this)


class NotFound(Exception):
    """A run or program the archive does not have (the page says which)."""


def finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


async def run_record(ws: Workspace, run_id: int) -> RunRecord:
    run = await ws.archive.get_run(run_id) if 0 < run_id < 2**63 else None
    if run is None:
        raise NotFound(f"the archive has no run {run_id}")
    return run


async def program_record(ws: Workspace, run_id: int, program_id: int) -> ProgramRecord:
    program = await ws.archive.get_program(run_id, program_id) if 0 < program_id < 2**63 else None
    if program is None:
        raise NotFound(f"run {run_id} has no program {program_id}")
    return program


def _budget(driver: Any) -> int | None:
    config = driver.get("config") if isinstance(driver, dict) else None
    budget = config.get("max_evaluations") if isinstance(config, dict) else None
    return budget if isinstance(budget, int) else None


async def runs_list(ws: Workspace) -> list[dict[str, Any]]:
    """Every run: status, progress against its driver's budget, best score, cost, isolation and scoring."""
    archive = ws.archive
    runs = await archive.list_runs()
    contracts = await all_contracts(archive, runs)
    drivers = await archive.notes_of_runs(run_notes.DRIVER)
    out = []
    for run in runs:
        best = await archive.best_program(run.id)
        counts, candidates = await readers.tally(archive, run.id)
        driver = drivers.get(run.id)
        out.append({
            "id": run.id, "name": run.name, "task": run.task, "status": run.status, "reason": run.status_reason,
            "created_at": run.created_at, "candidates": candidates,
            "in_flight": counts.get("pending", 0) + counts.get("running", 0), "budget": _budget(driver),
            "best": finite(best["combined_score"]) if best else None, "best_id": best["id"] if best else None,
            "target": finite(run.target_score), "cost_usd": await archive.llm_cost(run.id),
            "isolation": await archive.last_isolation(run.id) or "not measured",
            "scoring": scoring(contracts[run.id]), "scoring_detail": describe(contracts[run.id]),
            "driver": driver.get("state") if isinstance(driver, dict) else None,
        })
    return out


def _cursor(n: int, last: tuple[float, int] | None, low: int) -> str:
    """What `live` hands out: evaluations seen, the (evaluated_at, id) of the last one, and the smallest id an
    evaluation finishing later can have."""
    return f"{n}:{last[0]!r}:{last[1]}:{low}" if last else f"{n}:::{low}"


def parse_cursor(text: str | None) -> tuple[int, tuple[float, int] | None, int] | None:
    """`n:evaluated_at:id:low` (as `live` returns it) or None; a malformed cursor is None (start over)."""
    if not text:
        return None
    try:
        n, at, pid, low = text.split(":")
        return int(n), (float(at), int(pid)) if at else None, int(low)
    except ValueError:
        return None


async def live(ws: Workspace, run_id: int, cursor: str | None = None) -> dict[str, Any]:
    """A run's state now, and its evaluations since `cursor` (all of them, thinned, when there is none).

    `points` are [k, seconds since the run started, score or None (failed or incorrect), program id] in the
    order evaluations finished; without a cursor `steps` are the points that raised the best score and `points`
    a thinned sample. Pass back `cursor` to get only what is new: then the query reads only programs from the
    oldest one unfinished at the last answer on, however large the run."""
    archive = ws.archive
    run = await run_record(ws, run_id)
    since = parse_cursor(cursor)
    low = await readers.unfinished_from(archive, run_id)  # before reading: what finishes meanwhile is read again
    if since is None:
        rows = await readers.evaluations(archive, run_id)
    else:
        rows = await readers.evaluations(archive, run_id, since[1], since[2]) if since[1] else \
            await readers.evaluations(archive, run_id, None, since[2])
    start = since[0] if since else 0
    points = [[start + k, round(at - run.created_at, 3), finite(score) if correct else None, pid]
              for k, (pid, at, correct, score) in enumerate(rows, start=1)]
    last = (rows[-1][1], rows[-1][0]) if rows else since[1] if since else None  # (evaluated_at, id)
    out: dict[str, Any] = {"cursor": _cursor(start + len(rows), last, low), "reset": since is None}
    if since is None:
        best, steps = None, []
        for point in points:
            if point[2] is not None and (best is None or point[2] > best):
                best = point[2]
                steps.append(point)
        stride = max(1, math.ceil(len(points) / MAX_DOTS))
        sample = points[::stride]
        sample += [p for p in points[-12:] if p[0] > sample[-1][0]] if sample else []  # the latest, always
        out["steps"], out["points"], out["thinned"] = steps, sample, stride
        out["last_t"] = points[-1][1] if points else 0
    else:
        out["points"] = points
    out["state"] = await state(ws, run)
    return out


async def state(ws: Workspace, run: RunRecord) -> dict[str, Any]:
    """The run's facts, islands, operators and models, bandits and cost. Whether the best program's solution can
    be drawn is the web view's to add (server/drawings.py)."""
    archive = ws.archive
    driver = await archive.get_note(run.id, run_notes.DRIVER)  # before the counts: a finished driver's are all in
    best = await archive.best_program(run.id)
    counts, candidates = await readers.tally(archive, run.id)
    contracts = await run_contracts(archive, run)
    models = await archive.llm_call_stats(run.id)
    arms = await archive.get_note(run.id, run_notes.ARM_BANDIT) or {}
    patches = await archive.get_note(run.id, run_notes.PATCH_BANDIT) or {}
    islands = [{**row, "best": finite(row["best"])} for row in
               await CACHE.get(ws, run.id, "islands", lambda _: readers.islands(archive, run.id))]
    operators = await CACHE.get(ws, run.id, "operators", lambda _: readers.operators(archive, run.id))
    costs = await CACHE.get(ws, run.id, "costs", lambda _: readers.costs(archive, run.id))
    return {
        "run": {"id": run.id, "name": run.name, "task": run.task, "task_path": run.task_path, "status": run.status,
                "reason": run.status_reason, "created_at": run.created_at, "target": finite(run.target_score)},
        "counts": counts, "candidates": candidates,
        "in_flight": counts.get("pending", 0) + counts.get("running", 0),
        "best": {"id": best["id"], "score": finite(best["combined_score"]), "generation": best["generation"],
                 "island": best["island"]} if best else None,
        "seed_score": finite(await archive.seed_score(run.id)),
        "budget": _budget(driver),
        "driver": {k: driver.get(k) for k in ("state", "reason", "refused", "failing_models", "in_flight")}
        if isinstance(driver, dict) else None,
        "scoring": scoring(contracts), "scoring_detail": describe(contracts),
        "isolation": await archive.last_isolation(run.id) or "not measured",
        "islands": islands,
        "arms": _arms(arms, operators),
        "patch_types": _bandit_rows(patches),
        "models": models,
        "cost_usd": sum(m["cost_usd"] or 0 for m in models.values()),
        "costs": [[round(ts - run.created_at, 3), total] for ts, total in costs],
    }


def _bandit_rows(state: Any) -> list[dict[str, Any]]:
    rows = []
    for name, s in (state.get("arms") or {}).items() if isinstance(state, dict) else ():
        weight = s.get("weight") or 0.0
        rows.append({"name": name, "pulls": s.get("pulls", 0), "pending": s.get("pending", 0),
                     "wins": s.get("wins", 0), "mean_reward": (s.get("reward", 0.0) / weight) if weight else None,
                     "cost_usd": s.get("cost_usd", 0.0)})
    return rows


def _arms(bandit: Any, operators: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each operator or model: its bandit's statistics (when a driver chose it) and what its proposals became."""
    rows = {row["name"]: row for row in _bandit_rows(bandit)}
    for name in operators:
        rows.setdefault(name, {"name": name, "pulls": None, "pending": None, "wins": None, "mean_reward": None,
                               "cost_usd": None})
    for name, row in rows.items():
        row.update(operators.get(name, {"proposals": 0, "correct": 0, "failed_steps": 0, "last_failure": None,
                                        "disabled": None}))
    return sorted(rows.values(), key=lambda r: (-(r["proposals"] or 0), r["name"]))
