"""The async archive: one SQLite file in WAL mode, the source of truth of every run.

Every write is committed before the method returns, so whatever a caller reports
to a client survives a kill -9 of the process.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from .records import EvaluationResult, ProgramRecord, ProgramStatus, RunRecord, RunStatus
from .schema import MIGRATIONS, SCHEMA_VERSION

ArchiveOrder = Literal["score", "newest", "oldest"]

# sort key of programs without a score: after every real score; spelled as in the schema's index
_NO_SCORE = "-1.0e308"

_SUMMARY_COLUMNS = (
    "id, run_id, parent_id, island, generation, patch_type, description, status, correct, "
    "combined_score, public_metrics, text_feedback, error, eval_seconds, cost_usd, created_at, evaluated_at"
)


# an island's members joined to their rows (the caller filters on m.run_id and m.island)
_ISLAND_PROGRAMS = "island_members m JOIN programs ON programs.id = m.program_id"
_ISLAND_COLUMNS = ", ".join(f"programs.{name.strip()}" for name in _SUMMARY_COLUMNS.split(","))
# an island's members `p` walked from the newest down its index, for "the newest that ..." (parameters: run id,
# island); filtering programs by `id IN (SELECT program_id FROM island_members ...)` instead would scan the whole run
_MEMBERS_NEWEST_FIRST = ("island_members m JOIN programs p ON p.id = m.program_id"
                         " WHERE m.run_id = ? AND m.island = ?")


class DuplicateProgram(Exception):
    """The run already holds a program with exactly this code."""

    def __init__(self, twin_id: int):
        super().__init__(f"duplicate of program {twin_id}")
        self.twin_id = twin_id


class BadCursor(ValueError):
    pass


class StorageError(Exception):
    """The archive file could not be read or written (a full disk, a read-only file, a lock held too long, an
    I/O error). The message is one line: the cause and what to do. Whatever was committed before is intact."""


# SQLite's words for a cause -> what the user can do about it
_REMEDIES = (
    ("full", "free space on the disk that holds it"),
    ("readonly", "make the file and its folder writable by this user, or use another archive"),
    ("read-only", "make the file and its folder writable by this user, or use another archive"),
    ("locked", "another process holds it locked: wait, or stop that process"),
    ("unable to open", "check that its folder exists and is writable, or use another archive"),
    ("i/o error", "check the disk (dmesg) and free space on it"),
    ("malformed", "the file is damaged: restore it from a backup or start a new archive"),
    ("not a database", "this file is not an evomcp archive: pass another path"),
)


def storage_error(path: Path, exc: BaseException) -> StorageError:
    """A one-line StorageError naming the archive, SQLite's cause and the remedy."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    remedy = next((fix for word, fix in _REMEDIES if word in cause.lower()), "check the file and its disk")
    return StorageError(f"the archive {path} could not be used: {cause}; {remedy}. What it held before is intact; "
                        f"once fixed, resume the run")


def _storage_errors(method):
    """Turn SQLite's and the file system's errors of an archive method into a StorageError."""
    @functools.wraps(method)
    async def guarded(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
                raise
            raise storage_error(self.path, exc) from exc
    return guarded


def _load_json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _run(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    return RunRecord.model_validate(data)


def _program(row: sqlite3.Row) -> ProgramRecord:
    data = dict(row)
    data.pop("embedding", None)
    data["public_metrics"] = _load_json(data["public_metrics"])
    data["private_metrics"] = _load_json(data["private_metrics"])
    data["correct"] = None if data["correct"] is None else bool(data["correct"])
    return ProgramRecord.model_validate(data)


def _summary(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["public_metrics"] = _load_json(data["public_metrics"])
    data["correct"] = None if data["correct"] is None else bool(data["correct"])
    return data


def _moves(moves: list[tuple[int, int, int]]) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(program, island) pairs a migration's moves leave and join."""
    return {(p, source) for p, source, _ in moves}, {(p, to) for p, _, to in moves}


def encode_cursor(key: float, program_id: int, view: list[Any]) -> str:
    """A page's end: its sort key and program id, with the view it pages (order, island, correct_only)."""
    return base64.urlsafe_b64encode(json.dumps([key, program_id, *view]).encode()).decode()


def decode_cursor(cursor: str, view: list[Any]) -> tuple[float, int]:
    """(sort key, program id) of a cursor, which must come from a page of the same view."""
    try:
        key, program_id, *paged = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not 0 <= int(program_id) < 2**63:
            raise ValueError("program id out of range")
        key, program_id = float(key), int(program_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor(
            "cursor is not one this server returned; pass the next_cursor of the previous page, or omit it"
        ) from exc
    if paged != view:
        raise BadCursor("cursor comes from a page of another order, island or correct_only; pass the same ones as "
                        "the call that returned it, or omit cursor to start from the first page")
    return key, program_id


class Archive:
    """Async access to the archive file. Open with `await Archive.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path):
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: str | Path, read_only: bool = False) -> Archive:
        """Open (and create or migrate) the archive; `read_only` only reads, which also works on a read-only
        file or disk, and never creates the file."""
        path = Path(path)
        if read_only:
            try:
                return await cls._open_read_only(path)
            except OSError as exc:  # a folder this user may not enter, say
                raise storage_error(path, exc) from exc
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(path, exc) from exc
        db.row_factory = sqlite3.Row
        archive = cls(db, path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await archive._migrate()
        except BaseException as exc:
            await db.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise storage_error(path, exc) from exc
            raise
        return archive

    @classmethod
    async def _open_read_only(cls, path: Path) -> Archive:
        if not path.is_file():
            raise StorageError(f"there is no archive at {path}; give the path of an existing one (--db)")
        last: BaseException | None = None
        # mode=ro sees what a live writer commits. Where even that cannot open (a read-only disk keeps SQLite
        # from making the WAL's shared-memory file) and no write-ahead log holds commits the file lacks, the
        # file cannot change under us: immutable=1. Never where a log has content (it would read stale data).
        wal = Path(f"{path}-wal")
        frozen = not os.access(path.parent, os.W_OK) and (not wal.exists() or wal.stat().st_size == 0)
        for query in ("mode=ro", "immutable=1") if frozen else ("mode=ro",):
            try:
                db = await aiosqlite.connect(f"{path.resolve().as_uri()}?{query}", uri=True, isolation_level=None)
            except sqlite3.Error as exc:
                last = exc
                continue
            db.row_factory = sqlite3.Row
            archive = cls(db, path)
            try:
                await db.execute("PRAGMA busy_timeout=5000")
                (version,) = await archive._row("PRAGMA user_version")
                if version == 0:
                    await db.close()
                    raise StorageError(f"{path} holds no evomcp archive yet (it is empty, or not one); "
                                       f"`evomcp run TASK --db {path}` makes one there")
                if version > SCHEMA_VERSION:
                    await db.close()
                    raise StorageError(f"archive {path} has schema version {version}, newer than this evomcp "
                                       f"({SCHEMA_VERSION}); upgrade evomcp to open it")
                if version < SCHEMA_VERSION:
                    await db.close()
                    return await cls._upgraded(path, version)
                return archive
            except (sqlite3.Error, OSError) as exc:
                last = exc
                await db.close()
            except BaseException:
                await db.close()
                raise
        raise storage_error(path, last)

    @classmethod
    async def _upgraded(cls, path: Path, version: int) -> Archive:
        """An archive an older evomcp wrote, opened read-only once this one has upgraded it (its migrations only
        add; what the older one wrote stays), or a StorageError that says why it cannot be."""
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise StorageError(f"archive {path} was written by an older evomcp (schema {version}; this one reads "
                               f"{SCHEMA_VERSION}) and cannot be upgraded where it is (not writable): copy it to a "
                               f"writable folder and open the copy")
        writer = await cls.open(path)  # migrates it
        await writer.close()
        return await cls._open_read_only(path)

    async def close(self) -> None:
        await self._db.close()

    async def _rows(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        """A query's rows in one trip to aiosqlite's thread (execute, then fetch, would be two)."""
        return list(await self._db.execute_fetchall(sql, args))

    async def _row(self, sql: str, args: tuple | list = ()) -> sqlite3.Row | None:
        """The first row of a query that has at most one."""
        rows = await self._rows(sql, args)
        return rows[0] if rows else None

    async def _migrate(self) -> None:
        (version,) = await self._row("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"archive {self.path} has schema version {version}, newer than this evomcp "
                f"({SCHEMA_VERSION}); upgrade evomcp to open it"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await self._db.executescript(
                f"BEGIN;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version={target};\nCOMMIT;"
            )

    async def integrity_check(self) -> str:
        (result,) = await self._row("PRAGMA integrity_check")
        return result

    # runs ------------------------------------------------------------------

    async def create_run(
        self, name: str, task: str, task_path: str, config: dict[str, Any], target_score: float | None
    ) -> RunRecord:
        now = time.time()
        cur = await self._db.execute(
            "INSERT INTO runs(name, task, task_path, config, status, target_score, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
            (name, task, task_path, json.dumps(config), target_score, now, now),
        )
        run = await self.get_run(cur.lastrowid)
        assert run is not None
        return run

    async def get_run(self, run_id: int) -> RunRecord | None:
        row = await self._row("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(row) if row else None

    async def list_runs(self) -> list[RunRecord]:
        rows = await self._rows("SELECT * FROM runs ORDER BY id")
        return [_run(r) for r in rows]

    async def set_run_status(self, run_id: int, status: RunStatus, reason: str | None = None) -> None:
        await self._db.execute(
            "UPDATE runs SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
            (status, reason, time.time(), run_id),
        )

    # programs ----------------------------------------------------------------

    async def insert_program(
        self,
        *,
        run_id: int,
        parent_id: int | None,
        island: int,
        generation: int,
        code: str,
        code_hash: str,
        diff: str | None,
        patch_type: str,
        description: str | None,
        cost_usd: float = 0.0,
        embedding: bytes | None = None,
        fingerprint: str | None = None,
        operator: str | None = None,
        allow_duplicate: bool = False,
    ) -> ProgramRecord:
        """Insert a pending program; refuses exact duplicates in the run unless `allow_duplicate`.

        The duplicate check and the insert are one statement, so concurrent proposals of the
        same code cannot both get in.
        """
        created_at = time.time()
        values = (run_id, parent_id, island, generation, code, code_hash, diff, patch_type, description, cost_usd,
                  embedding, fingerprint, operator, created_at)
        columns = ("run_id, parent_id, island, generation, code, code_hash, diff, patch_type, description, status,"
                   " cost_usd, embedding, fingerprint, operator, created_at")
        if allow_duplicate:
            cur = await self._db.execute(
                f"INSERT INTO programs({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)", values)
        else:
            cur = await self._db.execute(
                f"INSERT INTO programs({columns}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM programs WHERE run_id = ? AND code_hash = ?)",
                (*values, run_id, code_hash),
            )
            if cur.rowcount == 0:
                twin = await self.find_by_hash(run_id, code_hash)
                raise DuplicateProgram(twin if twin is not None else -1)
        return ProgramRecord(  # the row as inserted, without reading it back
            id=cur.lastrowid, run_id=run_id, parent_id=parent_id, island=island, generation=generation, code=code,
            code_hash=code_hash, diff=diff, patch_type=patch_type, description=description, status="pending",
            correct=None, combined_score=None, public_metrics={}, private_metrics={}, text_feedback=None, error=None,
            stdout_tail=None, stderr_tail=None, eval_seconds=None, cost_usd=cost_usd, created_at=created_at,
            evaluated_at=None, fingerprint=fingerprint, operator=operator)

    async def find_by_hash(self, run_id: int, code_hash: str) -> int | None:
        row = await self._row(
            "SELECT id FROM programs WHERE run_id = ? AND code_hash = ? ORDER BY id LIMIT 1", (run_id, code_hash)
        )
        return row[0] if row else None

    async def find_by_fingerprint(self, run_id: int, fingerprint: str) -> int | None:
        """The oldest program of the run with this canonical form."""
        row = await self._row(
            "SELECT id FROM programs WHERE run_id = ? AND fingerprint = ? ORDER BY id LIMIT 1", (run_id, fingerprint)
        )
        return row[0] if row else None

    async def get_program(self, run_id: int, program_id: int) -> ProgramRecord | None:
        row = await self._row(
            "SELECT * FROM programs WHERE id = ? AND run_id = ?", (program_id, run_id)
        )
        return _program(row) if row else None

    async def get_programs(self, run_id: int, program_ids: list[int]) -> list[ProgramRecord]:
        """The run's programs of these ids, in one query (missing ones left out), in the order asked."""
        if not program_ids:
            return []
        rows = await self._rows(
            f"SELECT * FROM programs WHERE run_id = ? AND id IN ({', '.join('?' * len(program_ids))})",
            (run_id, *program_ids))
        found = {row["id"]: _program(row) for row in rows}
        return [found[i] for i in program_ids if i in found]

    async def set_program_status(self, program_id: int, status: ProgramStatus) -> None:
        await self._db.execute("UPDATE programs SET status = ? WHERE id = ?", (status, program_id))

    async def save_result(self, program_id: int, result: EvaluationResult) -> float:
        """Write an evaluation's result onto its program; returns the time it records as `evaluated_at`."""
        evaluated_at = time.time()
        await self._db.execute(
            "UPDATE programs SET status = ?, correct = ?, combined_score = ?, public_metrics = ?,"
            " private_metrics = ?, text_feedback = ?, error = ?, stdout_tail = ?, stderr_tail = ?,"
            " eval_seconds = ?, evaluated_at = ? WHERE id = ?",
            (
                result.status,
                int(result.correct),
                result.combined_score,
                json.dumps(result.public_metrics),
                json.dumps(result.private_metrics),
                result.text_feedback,
                result.error,
                result.stdout_tail,
                result.stderr_tail,
                result.eval_seconds,
                evaluated_at,
                program_id,
            ),
        )
        return evaluated_at

    async def pending_ids(self, run_id: int, running_too: bool = False) -> list[int]:
        """Programs of the run proposed and not evaluated yet (`running_too`: and those marked running, which
        a write that failed may have left so), oldest first."""
        statuses = "('pending', 'running')" if running_too else "('pending')"
        # sorted here: ORDER BY id would have SQLite walk the whole run in id order instead of the status index
        rows = await self._rows(f"SELECT id FROM programs WHERE run_id = ? AND status IN {statuses}", (run_id,))
        return sorted(row[0] for row in rows)

    async def reset_unfinished(self) -> int:
        """Put programs left `running` by a dead process back to `pending`."""
        cur = await self._db.execute("UPDATE programs SET status = 'pending' WHERE status = 'running'")
        return cur.rowcount

    async def page_programs(
        self,
        run_id: int,
        *,
        order: ArchiveOrder = "score",
        limit: int = 20,
        cursor: str | None = None,
        island: int | None = None,
        correct_only: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of program summaries (no code) and the cursor of the next page."""
        # an island's newest or oldest page walks its members in the island's index order, not the whole run; its
        # page by score walks the run's score index and keeps the island's members, so that it stops after a page
        # of them (walking the members would sort them all)
        by_members = island is not None and order != "score"
        source, columns, pid = (_ISLAND_PROGRAMS, _ISLAND_COLUMNS, "m.program_id") if by_members else \
            ("programs", _SUMMARY_COLUMNS, "id")
        where = ["programs.run_id = ?"]
        args: list[Any] = [run_id]
        if by_members:
            where += ["m.run_id = ?", "m.island = ?"]
            args += [run_id, island]
        elif island is not None:
            where.append("EXISTS (SELECT 1 FROM island_members m WHERE m.program_id = programs.id AND m.island = ?)")
            args.append(island)
        if correct_only:
            where.append("correct = 1")
        key_sql = {"score": f"COALESCE(combined_score, {_NO_SCORE})", "newest": pid, "oldest": pid}[order]
        view = [order, island, correct_only]  # a cursor pages the view it came from, no other
        if cursor is not None:
            key, last_id = decode_cursor(cursor, view)
            if order == "score":
                where.append(f"({key_sql} < ? OR ({key_sql} = ? AND {pid} > ?))")
                args += [key, key, last_id]
            elif order == "newest":
                where.append(f"{pid} < ?")
                args.append(last_id)
            else:
                where.append(f"{pid} > ?")
                args.append(last_id)
        order_sql = {"score": f"{key_sql} DESC, {pid} ASC", "newest": f"{pid} DESC", "oldest": f"{pid} ASC"}[order]
        sql = (
            f"SELECT {columns}, {key_sql} AS sort_key FROM {source} WHERE {' AND '.join(where)}"
            f" ORDER BY {order_sql} LIMIT ?"
        )
        rows = await self._rows(sql, (*args, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["sort_key"], rows[-1]["id"], view) if more and rows else None
        summaries = []
        for row in rows:
            data = _summary(row)
            data.pop("sort_key")
            summaries.append(data)
        return summaries, next_cursor

    async def lineage(self, run_id: int, program_id: int) -> list[dict[str, Any]]:
        """The program and its ancestors, oldest first."""
        rows = await self._rows(
            f"""
            WITH RECURSIVE chain(id, depth) AS (
                SELECT id, 0 FROM programs WHERE id = ? AND run_id = ?
                UNION ALL
                SELECT p.parent_id, chain.depth + 1 FROM programs p JOIN chain ON p.id = chain.id
                WHERE p.parent_id IS NOT NULL
            )
            SELECT {_SUMMARY_COLUMNS} FROM programs JOIN chain USING (id) ORDER BY chain.depth DESC
            """,
            (program_id, run_id),
        )
        return [_summary(r) for r in rows]

    async def counts_by_status(self, run_id: int) -> dict[str, int]:
        """Programs by status."""
        rows = await self._rows("SELECT status, COUNT(*) FROM programs WHERE run_id = ? GROUP BY status", (run_id,))
        return {status: n for status, n in rows}

    async def seed_score(self, run_id: int) -> float | None:
        """The combined score of the run's seed (its first program without a parent), None until it has one."""
        row = await self._row("SELECT combined_score FROM programs WHERE run_id = ? AND parent_id IS NULL"
                              " ORDER BY id LIMIT 1", (run_id,))
        return row[0] if row else None

    async def best_program(self, run_id: int) -> dict[str, Any] | None:
        row = await self._row(
            f"SELECT {_SUMMARY_COLUMNS} FROM programs WHERE run_id = ? AND correct = 1"
            " ORDER BY combined_score DESC, id ASC LIMIT 1",
            (run_id,),
        )
        return _summary(row) if row else None

    async def recent_failures(self, run_id: int, parent_id: int, limit: int = 3) -> list[dict[str, Any]]:
        rows = await self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM programs WHERE run_id = ? AND parent_id = ?"
            " AND (status = 'failed' OR correct = 0) ORDER BY id DESC LIMIT ?",
            (run_id, parent_id, limit),
        )
        return [_summary(r) for r in rows]

    async def island_failures(self, run_id: int, island: int, limit: int = 3) -> list[dict[str, Any]]:
        """The newest members of an island that failed or were judged incorrect, with their output tails."""
        rows = await self._rows(
            "SELECT p.id, p.parent_id, p.description, p.error, p.stdout_tail, p.stderr_tail"
            f" FROM {_MEMBERS_NEWEST_FIRST} AND (p.status = 'failed' OR (p.status = 'evaluated' AND p.correct = 0))"
            " ORDER BY m.program_id DESC LIMIT ?",
            (run_id, island, limit),
        )
        return [dict(r) for r in rows]

    async def population_rows(self, run_id: int) -> list[tuple]:
        """(id, parent_id, island proposed on, generation, status, correct, combined_score) of every program, oldest
        first."""
        rows = await self._rows(
            "SELECT id, parent_id, island, generation, status, correct, combined_score FROM programs"
            " WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        return [tuple(r) for r in rows]

    async def memberships(self, run_id: int) -> list[tuple[int, int]]:
        """(program id, island) of every island membership of the run's programs, in program then island order."""
        rows = await self._rows("SELECT program_id, island FROM island_members WHERE run_id = ?"
                                " ORDER BY program_id, island", (run_id,))
        return [tuple(r) for r in rows]  # type: ignore[misc]

    async def latest_failed(self, run_id: int, island: int) -> int | None:
        """The newest member of an island that failed or was judged incorrect (for fix mode)."""
        row = await self._row(
            f"SELECT p.id FROM {_MEMBERS_NEWEST_FIRST} AND p.status IN ('evaluated', 'failed') AND p.correct = 0"
            " ORDER BY m.program_id DESC LIMIT 1",
            (run_id, island),
        )
        return row[0] if row else None

    async def join_islands(self, run_id: int, program_id: int, islands: list[int]) -> None:
        """Make a program a member of more islands, in one statement (used to seed every island)."""
        await self._db.execute(
            "INSERT OR IGNORE INTO island_members(run_id, island, program_id) SELECT ?, i.value, ? FROM json_each(?) i",
            (run_id, program_id, json.dumps(islands)))

    async def seed_placement(self, run_id: int) -> tuple[int | None, str | None, list[int]]:
        """(the seed's id, its status, the islands it is a member of): the seed is the run's program without a
        parent."""
        row = await self._row("SELECT id, status FROM programs WHERE run_id = ? AND parent_id IS NULL"
                              " ORDER BY id LIMIT 1", (run_id,))
        if row is None:
            return None, None, []
        islands = await self._rows("SELECT island FROM island_members WHERE program_id = ? ORDER BY island",
                                   (row["id"],))
        return row["id"], row["status"], [r[0] for r in islands]

    async def move_programs(self, run_id: int, moves: list[tuple[int, int, int]]) -> None:
        """A migration: (program id, from island, to island) each, taken together: a program leaves the islands
        it moves from unless it also moves to them (the seed, sent on by every island, stays on each). The new
        memberships are written first: a kill in between leaves a program on more islands, never on none."""
        sources, destinations = _moves(moves)
        await self._db.executemany(
            "INSERT OR IGNORE INTO island_members(program_id, island, run_id) VALUES (?, ?, ?)",
            [(program_id, island, run_id) for program_id, island in destinations])
        await self._db.executemany("DELETE FROM island_members WHERE program_id = ? AND island = ?",
                                   sorted(sources - destinations))

    async def embeddings(self, run_id: int, per_island: int) -> list[tuple[int, int, bytes]]:
        """(id, island, embedding) of each island's newest `per_island` member programs, oldest first."""
        islands = await self._rows("SELECT DISTINCT island FROM island_members WHERE run_id = ?", (run_id,))
        rows: list[tuple[int, int, bytes]] = []
        for (island,) in islands:
            newest = await self._rows(
                "SELECT p.id, m.island, p.embedding FROM island_members m JOIN programs p ON p.id = m.program_id"
                " WHERE m.run_id = ? AND m.island = ? AND p.embedding IS NOT NULL ORDER BY p.id DESC LIMIT ?",
                (run_id, island, per_island),
            )
            rows += [tuple(r) for r in newest]
        return sorted(rows)

    # LLM calls ------------------------------------------------------------------

    async def add_llm_call(self, run_id: int, model: str, purpose: str, *, prompt_tokens: int = 0,
                           completion_tokens: int = 0, cost_usd: float = 0.0, seconds: float = 0.0, ok: bool,
                           error: str | None = None) -> int:
        cur = await self._db.execute(
            "INSERT INTO llm_calls(run_id, model, purpose, prompt_tokens, completion_tokens, cost_usd, seconds, ok,"
            " error, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, model, purpose, prompt_tokens, completion_tokens, cost_usd, seconds, int(ok), error,
             time.time()),
        )
        return cur.lastrowid

    async def link_llm_call(self, call_id: int, program_id: int) -> None:
        await self._db.execute("UPDATE llm_calls SET program_id = ? WHERE id = ?", (program_id, call_id))

    async def llm_cost(self, run_id: int) -> float:
        (total,) = await self._row("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE run_id = ?", (run_id,))
        return float(total)

    async def llm_call_stats(self, run_id: int) -> dict[str, dict[str, Any]]:
        """Per model: calls, ok, failed, cost and tokens; `failing`: failed calls since its last good one, with
        the newest failure's `last_error`."""
        rows = await self._rows(
            "WITH good AS (SELECT model, MAX(id) AS id FROM llm_calls WHERE run_id = ? AND ok = 1 GROUP BY model)"
            " SELECT c.model AS model, COUNT(*) AS calls, SUM(c.ok) AS ok, COUNT(*) - SUM(c.ok) AS failed,"
            " SUM(c.cost_usd) AS cost_usd, SUM(c.prompt_tokens) AS prompt_tokens,"
            " SUM(c.completion_tokens) AS completion_tokens, SUM(c.ok = 0 AND c.id > COALESCE(good.id, 0)) AS failing,"
            " (SELECT e.error FROM llm_calls AS e WHERE e.run_id = c.run_id AND e.model = c.model AND e.ok = 0"
            "  ORDER BY e.id DESC LIMIT 1) AS last_error"
            " FROM llm_calls AS c LEFT JOIN good ON good.model = c.model WHERE c.run_id = ? GROUP BY c.model",
            (run_id, run_id),
        )
        keys = ("calls", "ok", "failed", "failing", "last_error", "cost_usd", "prompt_tokens", "completion_tokens")
        return {r["model"]: {k: r[k] for k in keys} for r in rows}

    async def recent_programs(self, run_id: int, limit: int) -> list[dict[str, Any]]:
        rows = await self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM programs WHERE run_id = ? AND status IN ('evaluated', 'failed')"
            " ORDER BY id DESC LIMIT ?",
            (run_id, limit),
        )
        return [_summary(r) for r in rows]

    # notes: small per-run state (bandit statistics, scratchpad, counters) -------

    async def get_note(self, run_id: int, key: str) -> Any:
        row = await self._row("SELECT value FROM notes WHERE run_id = ? AND key = ?", (run_id, key))
        return json.loads(row[0]) if row else None

    async def notes_of_runs(self, key: str) -> dict[int, Any]:
        """One note of every run that has it, by run id (one query, for listings)."""
        rows = await self._rows("SELECT run_id, value FROM notes WHERE key = ?", (key,))
        return {r[0]: json.loads(r[1]) for r in rows}

    async def set_note(self, run_id: int, key: str, value: Any) -> None:
        await self.set_notes(run_id, {key: value})

    async def set_notes(self, run_id: int, values: dict[str, Any]) -> None:
        """Write several notes in one statement (one commit)."""
        now = time.time()
        await self._db.execute(
            "INSERT INTO notes(run_id, key, value, updated_at) VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(values))
            + " ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [item for key, value in values.items() for item in (run_id, key, json.dumps(value), now)],
        )

    async def count_events(self, run_id: int, kind: str) -> int:
        (n,) = await self._row("SELECT COUNT(*) FROM events WHERE run_id = ? AND kind = ?", (run_id, kind))
        return n

    # events ------------------------------------------------------------------

    async def add_event(self, run_id: int, kind: str, data: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO events(run_id, ts, kind, data) VALUES (?, ?, ?, ?)",
            (run_id, time.time(), kind, json.dumps(data)),
        )

    async def last_isolation(self, run_id: int) -> str | None:
        """The isolation level the run's newest evaluation was recorded with."""
        row = await self._row("SELECT json_extract(data, '$.isolation') FROM events WHERE run_id = ? AND"
                              " kind = 'evaluated' ORDER BY id DESC LIMIT 1", (run_id,))
        return row[0] if row else None

    async def events(self, run_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT ts, kind, data FROM events WHERE run_id = ? ORDER BY id DESC LIMIT ?", (run_id, limit)
        )
        return [{"ts": r["ts"], "kind": r["kind"], "data": json.loads(r["data"])} for r in rows]

    # reports: read-only queries of whole runs (used by evomcp.server.report) -----

    async def report_programs(self, run_id: int) -> list[dict[str, Any]]:
        """Every program of a run without code or metrics, in id (creation) order; `island` is the island it was
        proposed on, `islands` those it is a member of now."""
        rows = await self._rows(
            "SELECT id, parent_id, island, generation, status, correct, combined_score, cost_usd, created_at,"
            " evaluated_at, patch_type, description, code_hash, operator,"
            " (SELECT json_group_array(m.island) FROM island_members m WHERE m.program_id = programs.id) AS islands"
            " FROM programs WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        programs = []
        for row in rows:
            data = dict(row)
            data["correct"] = None if data["correct"] is None else bool(data["correct"])
            data["islands"] = sorted(json.loads(data["islands"]))
            programs.append(data)
        return programs

    async def run_events(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event of a run (optionally of one kind), oldest first."""
        kind_sql = " AND kind = ?" if kind is not None else ""
        args: tuple[Any, ...] = (run_id, kind) if kind is not None else (run_id,)
        rows = await self._rows(
            f"SELECT id, ts, kind, data FROM events WHERE run_id = ?{kind_sql} ORDER BY id", args
        )
        return [{"id": r["id"], "ts": r["ts"], "kind": r["kind"], "data": json.loads(r["data"])} for r in rows]


for _name, _method in list(vars(Archive).items()):  # every query of the archive reports storage errors alike
    if inspect.iscoroutinefunction(_method) and not _name.startswith("_") and _name not in ("open", "close"):
        setattr(Archive, _name, _storage_errors(_method))
