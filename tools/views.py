"""Read-only views of the archive: get_archive, get_program, get_lineage."""

from __future__ import annotations

from ..store import ArchiveOrder, BadCursor
from .errors import EvoError
from .models import ArchivePage, Lineage, ProgramDetail
from .steps import summary
from .workspace import Workspace

MAX_PAGE = 200


def program_uri(run_id: int, program_id: int) -> str:
    return f"evomcp://runs/{run_id}/programs/{program_id}"


async def get_archive(ws: Workspace, run_id: int, limit: int = 20, cursor: str | None = None,
                      order: ArchiveOrder = "score", island: int | None = None,
                      correct_only: bool = False) -> ArchivePage:
    run = await ws.run(run_id)
    if not 1 <= limit <= MAX_PAGE:
        raise EvoError(f"limit must be between 1 and {MAX_PAGE}; page through with cursor for more")
    islands = ws.config(run).num_islands
    if island is not None and not 0 <= island < islands:
        raise EvoError(f"run {run_id} has islands 0 to {islands - 1}; island {island} does not exist")
    try:
        rows, next_cursor = await ws.archive.page_programs(run_id, order=order, limit=limit, cursor=cursor,
                                                           island=island, correct_only=correct_only)
    except BadCursor as exc:
        raise EvoError(str(exc)) from None
    return ArchivePage(run_id=run_id, programs=[summary(r) for r in rows], next_cursor=next_cursor)


async def get_program(ws: Workspace, run_id: int, program_id: int) -> ProgramDetail:
    p = await ws.program(run_id, program_id)
    return ProgramDetail(**summary(p).model_dump(), run_id=run_id, code=p.code, diff=p.diff,
                         text_feedback=p.text_feedback, stdout_tail=p.stdout_tail, stderr_tail=p.stderr_tail,
                         resource_uri=program_uri(run_id, program_id))


async def get_lineage(ws: Workspace, run_id: int, program_id: int) -> Lineage:
    await ws.program(run_id, program_id)
    chain = await ws.archive.lineage(run_id, program_id)
    return Lineage(run_id=run_id, program_id=program_id, chain=[summary(r) for r in chain])
