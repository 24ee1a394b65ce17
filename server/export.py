"""`evomcp export`: a run's programs as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from ..store import Archive

COLUMNS = ["id", "parent_id", "copy_of", "island", "generation", "status", "correct", "combined_score", "patch_type",
           "description", "error", "eval_seconds", "cost_usd", "created_at", "evaluated_at"]


async def export_run(archive: Archive, run_id: int, fmt: str, out: TextIO) -> int:
    """Write every program of the run, oldest first (JSON lines include code and metrics). The seed's copies
    on other islands are rows too (their children point to them), with `copy_of` the seed's id: leave them
    out to count programs as get_run_status does."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    count, cursor, seed = 0, None, None
    while True:
        rows, cursor = await archive.page_programs(run_id, order="oldest", limit=500, cursor=cursor)
        copies = {}
        for row in rows:  # the seed's copies on other islands: rows of their own (children point to them)
            if row["parent_id"] is None:
                if seed is None:
                    seed = row["id"]
                else:
                    copies[row["id"]] = seed
            row["copy_of"] = copies.get(row["id"])
        if writer:
            writer.writerows(rows)
        else:
            for program in await archive.get_programs(run_id, [row["id"] for row in rows]):
                out.write(json.dumps({**program.model_dump(mode="json"), "copy_of": copies.get(program.id)}) + "\n")
        count += len(rows)
        if cursor is None:
            return count
