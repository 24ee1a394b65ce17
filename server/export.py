"""`evomcp export`: a run's programs as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from ..store import Archive

COLUMNS = ["id", "parent_id", "island", "generation", "status", "correct", "combined_score", "patch_type",
           "description", "error", "eval_seconds", "cost_usd", "created_at", "evaluated_at"]


async def export_run(archive: Archive, run_id: int, fmt: str, out: TextIO) -> int:
    """Write every program of the run, oldest first (JSON lines include code and metrics); `island` is the island
    a program was proposed on."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    count, cursor = 0, None
    while True:
        rows, cursor = await archive.page_programs(run_id, order="oldest", limit=500, cursor=cursor)
        if writer:
            writer.writerows(rows)
        else:
            for program in await archive.get_programs(run_id, [row["id"] for row in rows]):
                out.write(json.dumps(program.model_dump(mode="json")) + "\n")
        count += len(rows)
        if cursor is None:
            return count
