"""Plain SQL answers to what the in-memory population index answers, for tests to hold the index against.

They read the archive file with the standard library's sqlite3, apart from the product's own queries, so
that a wrong index and a wrong query cannot agree by sharing code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

_OF_ISLAND = "AND p.id IN (SELECT program_id FROM island_members WHERE run_id = ? AND island = ?)"


def _rows(db: str | Path, sql: str, args: tuple) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def selection_pool(db: str | Path, run_id: int, island: int | None = None) -> dict[int, int]:
    """{program id: children (pending ones included)} of the correct, evaluated programs of a run (of an
    island: its members)."""
    where, args = (_OF_ISLAND, (run_id, run_id, island)) if island is not None else ("", (run_id,))
    rows = _rows(db, "SELECT p.id, (SELECT COUNT(*) FROM programs c WHERE c.parent_id = p.id) AS children"
                     f" FROM programs p WHERE p.run_id = ? AND p.status = 'evaluated' AND p.correct = 1 {where}"
                     " ORDER BY p.id", args)
    return {row["id"]: row["children"] for row in rows}


def top_ids(db: str | Path, run_id: int, k: int, island: int | None = None) -> list[int]:
    """The best k correct, evaluated programs by score (ties: the older first)."""
    where, args = (_OF_ISLAND, (run_id, run_id, island)) if island is not None else ("", (run_id,))
    rows = _rows(db, "SELECT p.id FROM programs p WHERE p.run_id = ? AND p.status = 'evaluated' AND p.correct = 1"
                     f" AND p.combined_score IS NOT NULL {where} ORDER BY p.combined_score DESC, p.id LIMIT ?",
                 (*args, k))
    return [row["id"] for row in rows]
