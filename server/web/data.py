"""What the web view shows, read from the archive: runs, a run's live state, its genealogy, one program, a diff.

Every function takes a read-only `Workspace` (`open_workspace(db, reset=False)`: a read-only archive, no sandbox)
and returns plain data (JSON-able dicts) or records; nothing here renders HTML. Whatever costs a scan of a large
run (islands, operators, the genealogy) is cached until the run changes (`store.readers.run_version`), and
recomputed while it changes no sooner than `SLOW_EVERY` seconds or `SLOW_FACTOR` times what it took last (cheap
for a small run: every poll; a tenth of the server's time at most for a huge one).
"""

from __future__ import annotations

import difflib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from ...store import ProgramRecord, RunRecord, readers
from ...tools import run_notes
from ...tools.trust import all_contracts, describe, run_contracts, scoring
from ...tools.workspace import Workspace
from ..drawings import draw_solution
from .tree import Genealogy

SLOW_EVERY = 0.5  # seconds between recomputations of a changing run's scans, at least
SLOW_FACTOR = 10  # ... and at least this many times what the last one took
MAX_DOTS = 3000  # scores sent with a run's first live answer (thinned evenly beyond this)
CHILDREN_SHOWN = 200


class NotFound(Exception):
    """A run or program the archive does not have (the page says which)."""


def finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class _Cache:
    """Per (run, what): the value, the run version it was computed at, when, and how long computing took. A value
    is recomputed only when the run changed, and no sooner than SLOW_EVERY seconds or SLOW_FACTOR times what
    computing it took (a scan of a huge run then costs the server at most a tenth of its time, however many
    watch); one computation at a time per value."""
    entries: dict[tuple, tuple[tuple, float, float, Any]] = field(default_factory=dict)
    locks: dict[tuple, anyio.Lock] = field(default_factory=dict)

    async def get(self, ws: Workspace, run_id: int, what: str, compute) -> Any:
        key = (str(ws.archive.path), run_id, what)
        async with self.locks.setdefault(key, anyio.Lock()):  # many watchers, one computation
            return await self._get(ws, key, run_id, compute)

    async def _get(self, ws: Workspace, key: tuple, run_id: int, compute) -> Any:
        now = time.monotonic()
        held = self.entries.get(key)
        if held is not None and now - held[1] < max(SLOW_EVERY, SLOW_FACTOR * held[2]):
            return held[3]
        version = await readers.run_version(ws.archive, run_id)
        if held is not None and held[0] == version:
            self.entries[key] = (version, now, held[2], held[3])
            return held[3]
        value = await compute(held[3] if held is not None else None)
        self.entries[key] = (version, now, time.monotonic() - now, value)
        return value


CACHE = _Cache()


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
    """The run's facts, islands, operators and models, bandits and cost."""
    archive = ws.archive
    best = await archive.best_program(run.id)
    counts, candidates = await readers.tally(archive, run.id)
    contracts = await run_contracts(archive, run)
    driver = await archive.get_note(run.id, run_notes.DRIVER)
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
                 "island": best["island"], "drawing": await _drawable(ws, run, best["id"])} if best else None,
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


_DRAWABLE: dict[tuple[str, int], bool] = {}


async def _drawable(ws: Workspace, run: RunRecord, program_id: int) -> bool:
    """Whether the task draws this program's solution (remembered: a program's metrics never change once set)."""
    key = (str(ws.archive.path), program_id)
    if key not in _DRAWABLE:
        program = await ws.archive.get_program(run.id, program_id)
        _DRAWABLE[key] = program is not None and bool(program.correct) and \
            draw_solution(run.task, program.private_metrics, program.public_metrics) is not None
    return _DRAWABLE[key]


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


async def genealogy(ws: Workspace, run_id: int, root: int | None, limit: int,
                    first_generation: int | None = None) -> dict[str, Any]:
    run = await run_record(ws, run_id)

    async def index(held: tuple[Genealogy, int] | None) -> tuple[Genealogy, int]:
        """Read once whole, then only what changed: new programs, those that were unfinished, migrations."""
        archive = ws.archive
        if held is None:
            migrated = await readers.last_migration(archive, run_id)  # first: a later move is read next time
            return Genealogy.from_rows(await readers.tree_rows(archive, run_id)), migrated
        tree, migrated = held
        moves = await readers.migrations(archive, run_id, migrated)
        rows = await readers.tree_rows(archive, run_id, int(tree.ids[-1]) if len(tree.ids) else 0, tree.unfinished())
        return tree.updated(rows, [m for _, m in moves]), moves[-1][0] if moves else migrated
    tree, _ = await CACHE.get(ws, run_id, "tree", index)
    try:
        view = tree.view(root, limit, first_generation)
    except KeyError:
        raise NotFound(f"run {run_id} has no program {root}") from None
    view["target"] = finite(run.target_score)
    return view


@dataclass
class ProgramPage:
    run: RunRecord
    program: ProgramRecord
    parent: ProgramRecord | None
    origin: dict[str, Any]
    children: list[dict[str, Any]]
    children_total: int
    best_id: int | None


async def program_page(ws: Workspace, run_id: int, program_id: int) -> ProgramPage:
    run = await run_record(ws, run_id)
    program = await program_record(ws, run_id, program_id)
    parent = await ws.archive.get_program(run_id, program.parent_id) if program.parent_id else None
    kids, total = await readers.children(ws.archive, run_id, program_id, CHILDREN_SHOWN)
    best = await ws.archive.best_program(run_id)
    return ProgramPage(run, program, parent, await readers.origin(ws.archive, run_id, program_id), kids, total,
                       best["id"] if best else None)


@dataclass
class DiffLine:
    kind: str  # "same", "del" (only in a), "add" (only in b), "gap" (unchanged lines left out)
    a: int | None  # line number in a
    b: int | None  # line number in b
    text: str


def diff_lines(a: str, b: str, context: int | None = 3) -> list[DiffLine]:
    """The lines of a diff of a against b: every line with `context=None`, else changes with `context` lines
    around them and a gap line where unchanged lines are left out."""
    old, new = a.splitlines(), b.splitlines()
    if old == new:
        return []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    groups = [matcher.get_opcodes()] if context is None else list(matcher.get_grouped_opcodes(context))
    out: list[DiffLine] = []
    for g, group in enumerate(groups):
        if context is not None and (g > 0 or group[0][1] > 0):
            out.append(DiffLine("gap", None, None, f"{group[0][1] - (groups[g - 1][-1][2] if g else 0)} unchanged "
                                                   "lines"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [DiffLine("same", i + 1, j + 1, old[i]) for i, j in zip(range(i1, i2), range(j1, j2))]
                continue
            out += [DiffLine("del", i + 1, None, old[i]) for i in range(i1, i2)]
            out += [DiffLine("add", None, j + 1, new[j]) for j in range(j1, j2)]
    if context is not None and groups and groups[-1][-1][2] < len(old):
        out.append(DiffLine("gap", None, None, f"{len(old) - groups[-1][-1][2]} unchanged lines"))
    return out


async def diff_pair(ws: Workspace, run_id: int, a: int, b: int) -> tuple[RunRecord, ProgramRecord, ProgramRecord]:
    run = await run_record(ws, run_id)
    return run, await program_record(ws, run_id, a), await program_record(ws, run_id, b)

