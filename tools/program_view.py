"""One program as the web view shows it (its record, its parent, who made it, its best children, the run's best)
and two programs side by side, with the lines of their diff. server/web renders them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from ..store import ProgramRecord, RunRecord, readers
from .watch import program_record, run_record
from .workspace import Workspace

CHILDREN_SHOWN = 200


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


async def diff_pair(ws: Workspace, run_id: int, a: int, b: int) -> tuple[RunRecord, ProgramRecord, ProgramRecord]:
    run = await run_record(ws, run_id)
    return run, await program_record(ws, run_id, a), await program_record(ws, run_id, b)


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
