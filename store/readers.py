"""Read-only queries of the web view (evomcp.server.web) that the archive's own methods do not answer: the
evaluations of a run in the order they finished (from a cursor on), per-island tallies, what each operator
proposed and how often it failed, who made a program, a program's children, the model calls' costs over time.

Each is one query through the archive's connection (read-only where the view opened it so); SQLite's and the
file system's errors become the archive's one-line StorageError.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Any

from .archive import Archive, storage_error

EXTERNAL_ARM = "external agent"  # the arm of proposals that named no operator (the report's too)


def _reader(query):
    @functools.wraps(query)
    async def guarded(archive: Archive, *args, **kwargs):
        try:
            return await query(archive, *args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            raise storage_error(archive.path, exc) from exc
    return guarded


async def _rows(archive: Archive, sql: str, args: dict[str, Any] | tuple = ()) -> list[sqlite3.Row]:
    return await archive._rows(sql, args)  # noqa: SLF001 - the store's own module


@_reader
async def run_version(archive: Archive, run_id: int) -> tuple:
    """Changes whenever a program of the run is added or finishes, or a migration moves programs: a cache key.
    Index-only queries, cheap at any size."""
    (count,) = await _rows(archive, "SELECT COUNT(*), MAX(id) FROM programs WHERE run_id = ?", (run_id,))
    (done,) = await _rows(archive, "SELECT COUNT(*) FROM programs WHERE run_id = ? AND"
                                   " status IN ('evaluated', 'failed')", (run_id,))
    return (*count, done[0], await last_migration(archive, run_id))


async def last_migration(archive: Archive, run_id: int) -> int:
    rows = await _rows(archive, "SELECT id FROM events WHERE run_id = ? AND kind = 'migration' ORDER BY id DESC"
                                " LIMIT 1", (run_id,))
    return rows[0][0] if rows else 0


@_reader
async def migrations(archive: Archive, run_id: int, after: int) -> list[tuple[int, dict[int, list[int]]]]:
    """(event id, {island: program ids moved there}) of the run's migrations after event `after`, oldest first."""
    rows = await _rows(archive, "SELECT id, data FROM events WHERE run_id = ? AND kind = 'migration' AND id > ?"
                                " ORDER BY id", (run_id, after))
    out = []
    for event_id, text in rows:
        moved = json.loads(text).get("moved") or {}
        out.append((event_id, {int(island): [int(i) for i in ids] for island, ids in moved.items()}))
    return out


@_reader
async def unfinished_from(archive: Archive, run_id: int) -> int:
    """The smallest id of the run's programs still waiting or being evaluated, else one past its largest: every
    evaluation that finishes from now on is of a program with an id at least this."""
    (row,) = await _rows(archive, "SELECT MIN(id) FROM programs WHERE run_id = ? AND status IN ('pending', 'running')",
                         (run_id,))
    if row[0] is not None:
        return row[0]
    (row,) = await _rows(archive, "SELECT MAX(id) FROM programs WHERE run_id = ?", (run_id,))
    return (row[0] or 0) + 1


@_reader
async def tree_rows(archive: Archive, run_id: int, after: int = 0, also: list[int] | tuple = ()) -> list[tuple]:
    """(id, parent id or -1, island now, generation, status, score or None, island proposed on) of the run's
    programs with an id above `after` or in `also`, in id order; status 0 pending, 1 running, 2 correct,
    3 evaluated but incorrect, 4 failed; the score of correct ones only. The seed, a member of every island, shows
    on its lowest."""
    extra = f" OR id IN ({', '.join('?' * len(also))})" if also else ""
    rows = await _rows(archive, f"""
        SELECT id, COALESCE(parent_id, -1),
               COALESCE((SELECT MIN(m.island) FROM island_members m WHERE m.program_id = programs.id), island),
               generation,
               CASE status WHEN 'pending' THEN 0 WHEN 'running' THEN 1 WHEN 'failed' THEN 4
                           ELSE CASE WHEN correct = 1 THEN 2 ELSE 3 END END,
               CASE WHEN correct = 1 THEN combined_score END, island
        FROM programs WHERE run_id = ? AND (id > ?{extra}) ORDER BY id""", (run_id, after, *also))
    return [tuple(r) for r in rows]


@_reader
async def tally(archive: Archive, run_id: int) -> tuple[dict[str, int], int]:
    """Programs by status (as `Archive.counts_by_status`), and the candidates evaluated (programs with a parent
    whose evaluation finished: what budgets count). From the status index and the parentless row, so a poll costs
    the same at any size."""
    counts = await archive.counts_by_status(run_id)
    # `+run_id`: the parent index (the few parentless rows of every run), not a walk of the run's rows
    parentless = await _rows(archive, "SELECT status FROM programs WHERE parent_id IS NULL AND +run_id = ?", (run_id,))
    finished = counts.get("evaluated", 0) + counts.get("failed", 0)
    finished -= sum(status in ("evaluated", "failed") for (status,) in parentless)  # the seed is no candidate
    return {status: n for status, n in counts.items() if n}, finished


@_reader
async def evaluations(archive: Archive, run_id: int, after: tuple[float, int] | None = None,
                      from_id: int = 0) -> list[tuple]:
    """(id, evaluated_at, correct, combined_score) of the run's finished evaluations (evaluated or failed) in the
    order they finished; with a cursor (evaluated_at, id), those after it among programs with an id
    of at least `from_id` (what `unfinished_from` said before: a range of the primary key, not a scan)."""
    where = ""
    args: dict[str, Any] = {"run": run_id, "low": from_id}
    if after is not None:
        where = " AND (evaluated_at > :t OR (evaluated_at = :t AND id > :id))"
        args.update(t=after[0], id=after[1])
    rows = await _rows(archive, "SELECT id, COALESCE(evaluated_at, created_at) AS at, correct, combined_score"
                                " FROM programs WHERE run_id = :run AND id >= :low AND"
                                f" status IN ('evaluated', 'failed'){where} ORDER BY at, id", args)
    return [tuple(r) for r in rows]


@_reader
async def islands(archive: Archive, run_id: int) -> list[dict[str, Any]]:
    """Per island, of its members now: programs, correct ones, failed ones, the best score and its program (the
    seed is a member of every island until a migration moves it)."""
    rows = await _rows(archive, """
        SELECT m.island, COUNT(*) AS programs, COALESCE(SUM(p.correct = 1), 0) AS correct,
               COALESCE(SUM(p.status = 'failed' OR (p.status = 'evaluated' AND p.correct = 0)), 0) AS failed,
               MAX(CASE WHEN p.correct = 1 THEN p.combined_score END) AS best
        FROM island_members m JOIN programs p ON p.id = m.program_id
        WHERE m.run_id = ? GROUP BY m.island ORDER BY m.island""", (run_id,))
    out = [dict(r) for r in rows]
    for island in out:
        best = await _rows(archive, "SELECT p.id FROM island_members m JOIN programs p ON p.id = m.program_id"
                                    " WHERE m.run_id = ? AND m.island = ? AND p.correct = 1 AND p.combined_score = ?"
                                    " ORDER BY p.id LIMIT 1", (run_id, island["island"], island["best"]))
        island["best_id"] = best[0][0] if best else None
    return out


@_reader
async def operators(archive: Archive, run_id: int) -> dict[str, dict[str, Any]]:
    """Per operator (or model) named by proposals: proposals stored, correct ones, proposals that failed before a
    program was stored (with the newest reason), and whether the driver gave up on it."""
    out: dict[str, dict[str, Any]] = {}

    def arm(name: str | None) -> dict[str, Any]:
        return out.setdefault(name or EXTERNAL_ARM, {"proposals": 0, "correct": 0, "failed_steps": 0,
                                                         "last_failure": None, "disabled": None})
    for row in await _rows(archive, """
            SELECT operator AS op, COUNT(*) AS n, COALESCE(SUM(correct = 1), 0) AS ok FROM programs
            WHERE run_id = ? AND parent_id IS NOT NULL GROUP BY op""", (run_id,)):
        entry = arm(row["op"])
        entry["proposals"] += row["n"]
        entry["correct"] += row["ok"]
    for row in await _rows(archive, """
            SELECT json_extract(data, '$.arm') AS arm, COUNT(*) AS n,
                   (SELECT json_extract(l.data, '$.reason') FROM events l WHERE l.run_id = e.run_id AND
                    l.kind = 'proposal_failed' AND json_extract(l.data, '$.arm') IS json_extract(e.data, '$.arm')
                    ORDER BY l.id DESC LIMIT 1) AS last
            FROM events e WHERE run_id = ? AND kind = 'proposal_failed' GROUP BY arm""", (run_id,)):
        entry = arm(row["arm"])
        entry["failed_steps"], entry["last_failure"] = row["n"], row["last"]
    for row in await _rows(archive, "SELECT data FROM events WHERE run_id = ? AND kind = 'arm_disabled'", (run_id,)):
        data = json.loads(row[0])
        arm(data.get("arm"))["disabled"] = data.get("reason")
    return out


@_reader
async def origin(archive: Archive, run_id: int, program_id: int) -> dict[str, Any]:
    """Who made a program: the operator its proposal named (none: the seed, or an agent that named none), the model calls linked to it (model, cost, tokens)."""
    rows = await _rows(archive, "SELECT operator FROM programs WHERE run_id = ? AND id = ? AND parent_id IS NOT NULL",
                       (run_id, program_id))
    calls = await _rows(archive, "SELECT model, purpose, cost_usd, prompt_tokens, completion_tokens, seconds FROM"
                                 " llm_calls WHERE run_id = ? AND program_id = ? ORDER BY id", (run_id, program_id))
    return {"proposed": bool(rows), "operator": rows[0][0] if rows else None, "calls": [dict(c) for c in calls]}


@_reader
async def children(archive: Archive, run_id: int, program_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` children of a program, best first, and how many it has in all."""
    (total,) = (await _rows(archive, "SELECT COUNT(*) FROM programs WHERE parent_id = ? AND run_id = ?",
                            (program_id, run_id)))[0]
    rows = await _rows(archive, "SELECT id, island, generation, status, correct, combined_score, patch_type,"
                                " description FROM programs WHERE parent_id = ? AND run_id = ?"
                                " ORDER BY correct = 1 DESC, combined_score DESC, id LIMIT ?",
                       (program_id, run_id, limit))
    return [dict(r) for r in rows], total


@_reader
async def costs(archive: Archive, run_id: int, limit: int = 2000) -> list[tuple[float, float]]:
    """(time, cumulative cost) of the run's model calls that cost something, at most `limit` points (thinned)."""
    rows = await _rows(archive, "SELECT ts, cost_usd FROM llm_calls WHERE run_id = ? AND cost_usd > 0 ORDER BY id",
                       (run_id,))
    total, points = 0.0, []
    for ts, cost in rows:
        total += cost
        points.append((ts, total))
    step = max(1, -(-len(points) // limit))
    return points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
