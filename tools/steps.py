"""The steps of the evolution loop: sample_parent, propose_candidate, evaluate."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import numpy as np

from ..store import DuplicateProgram, EvaluationResult, ProgramRecord
from . import markers, patches, selection
from .brief import build_brief
from .errors import EvoError
from .models import ParentView, PatchType, ProgramSummary, ProposalResult, SampledParent
from .workspace import Workspace

Progress = Callable[[float, str], Awaitable[None]]


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def check_syntax(code: str, language: str, what: str) -> None:
    if language != "python":
        return
    try:
        compile(code, what, "exec")
    except SyntaxError as exc:
        raise EvoError(f"{what} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise EvoError(f"{what} cannot be compiled: {exc}") from None


def summary(row: dict[str, Any] | ProgramRecord) -> ProgramSummary:
    data = row.model_dump() if isinstance(row, ProgramRecord) else row
    return ProgramSummary.model_validate(data)


def parent_view(p: ProgramRecord) -> ParentView:
    return ParentView(id=p.id, island=p.island, generation=p.generation, combined_score=p.combined_score,
                      correct=p.correct, public_metrics=p.public_metrics, text_feedback=p.text_feedback, code=p.code)


async def sample_parent(ws: Workspace, run_id: int, strategy: str | None = None) -> SampledParent:
    run = await ws.open_run(run_id)
    config = ws.config(run)
    strategy = strategy or config.selection
    if strategy not in selection.STRATEGIES:
        raise EvoError(f"unknown strategy {strategy!r}; use one of {', '.join(selection.STRATEGIES)}")
    pool = await ws.archive.selection_pool(run_id)
    if not pool:
        raise EvoError(f"run {run_id} has no correct evaluated program to sample from yet; evaluate one first")
    in_flight = ws.tickets.in_flight(run_id)
    scores = np.array([row["combined_score"] for row in pool], dtype=float)
    children = np.array([row["children"] + in_flight.get(row["id"], 0) for row in pool], dtype=float)
    index = selection.choose(ws.rng, strategy, scores, children, alpha=config.power_law_alpha,
                             lam=config.weighted_lambda)
    parent = await ws.program(run_id, pool[index]["id"])
    inspirations = []
    for row in await ws.archive.top_k(run_id, config.num_inspirations + 1):
        if row["id"] != parent.id and len(inspirations) < config.num_inspirations:
            inspirations.append(await ws.program(run_id, row["id"]))
    best = await ws.archive.best_program(run_id)
    best_score = best["combined_score"] if best else None
    task = ws.task(run)
    brief = build_brief(
        task_name=task.name, description=task.description, language=task.language, parent=parent,
        best_score=best_score, inspirations=inspirations,
        failures=await ws.archive.recent_failures(run_id, parent.id),
    )
    ticket = ws.tickets.issue(run_id, parent.id, config.ticket_ttl_s)
    return SampledParent(run_id=run_id, ticket=ticket, strategy=strategy, parent=parent_view(parent),
                         inspirations=[parent_view(p) for p in inspirations], best_score=best_score, brief=brief)


async def propose_candidate(
    ws: Workspace,
    run_id: int,
    parent_id: int,
    patch: str | None = None,
    code: str | None = None,
    patch_type: PatchType | None = None,
    description: str | None = None,
    evaluate_now: bool = True,
    ticket: str | None = None,
    progress: Progress | None = None,
) -> ProposalResult:
    run = await ws.open_run(run_id)
    config = ws.config(run)
    parent = await ws.program(run_id, parent_id)
    if (patch is None) == (code is None):
        raise EvoError("pass exactly one of `patch` (SEARCH/REPLACE blocks) or `code` (the whole program)")
    text = patch if patch is not None else code
    assert text is not None
    if len(text.encode()) > config.max_code_bytes:
        raise EvoError(f"the change is {len(text.encode())} bytes, over this run's limit of "
                       f"{config.max_code_bytes}; send a smaller diff")
    kind: PatchType = patch_type or ("diff" if patch is not None else "full")
    applied = patches.apply_diff(parent.code, text) if kind == "diff" else patches.apply_full(parent.code, text)
    child_code = applied.code
    if len(child_code.encode()) > config.max_code_bytes:
        raise EvoError(f"the resulting program is {len(child_code.encode())} bytes, over this run's limit of "
                       f"{config.max_code_bytes}")
    markers.split(child_code, "the resulting program")
    task = ws.task(run)
    check_syntax(child_code, task.language, "the resulting program")
    if child_code == parent.code:
        raise EvoError("the change leaves the program as it was; propose a change that does something")
    best = await ws.archive.best_program(run_id)
    best_before = best["combined_score"] if best else None
    try:
        program = await ws.archive.insert_program(
            run_id=run_id, parent_id=parent.id, island=parent.island, generation=parent.generation + 1,
            code=child_code, code_hash=code_hash(child_code), diff=patches.unified_diff(parent.code, child_code),
            patch_type=kind, description=description,
        )
    except DuplicateProgram as dup:
        raise EvoError(f"this program is an exact duplicate of program {dup.twin_id}; propose a different change"
                       ) from None
    ws.tickets.redeem(ticket, run_id, parent.id)
    await ws.archive.add_event(run_id, "proposed", {"program": program.id, "parent": parent.id})
    if evaluate_now:
        return await evaluate(ws, run_id, program.id, progress=progress, best_before=best_before,
                              notes=applied.notes)
    return _result(run_id, summary(program), parent.combined_score, best_before, applied.notes)


def _result(run_id: int, program: ProgramSummary, parent_score: float | None, best_before: float | None,
            notes: list[str]) -> ProposalResult:
    score = program.combined_score if program.correct else None
    is_new_best = score is not None and (best_before is None or score > best_before)
    if program.status == "pending":
        next_step = f"call evaluate(run_id={run_id}, program_id={program.id}) to score it"
    elif program.status == "failed" or not program.correct:
        next_step = "read the error, then sample_parent again (or fix this program and propose it)"
    elif is_new_best:
        next_step = "new best program; sample_parent again to build on it"
    else:
        next_step = "sample_parent again and try another change"
    return ProposalResult(
        run_id=run_id,
        program=program,
        parent_score=parent_score,
        best_score_before=best_before,
        delta_to_parent=None if score is None or parent_score is None else score - parent_score,
        delta_to_best=None if score is None or best_before is None else score - best_before,
        is_new_best=is_new_best,
        notes=notes,
        next_step=next_step,
    )


async def evaluate(
    ws: Workspace,
    run_id: int,
    program_id: int,
    progress: Progress | None = None,
    best_before: float | None = None,
    notes: list[str] | None = None,
) -> ProposalResult:
    run = await ws.run(run_id)
    program = await ws.program(run_id, program_id)
    if program.status in ("evaluated", "running"):
        raise EvoError(f"program {program_id} is already {program.status}; call get_program to read its result")
    if best_before is None:
        best = await ws.archive.best_program(run_id)
        best_before = best["combined_score"] if best else None
    task = ws.task(run)
    await ws.archive.set_program_status(program_id, "running")
    report = None
    try:
        async with anyio.create_task_group() as tg:
            if progress is not None:
                tg.start_soon(_tick, progress, task.timeout_s)
            report = await ws.executor.evaluate(task, program.code)
            tg.cancel_scope.cancel()
    finally:
        if report is None:  # cancelled: leave the program ready to evaluate again
            with anyio.CancelScope(shield=True):
                await ws.archive.set_program_status(program_id, "pending")
    result = EvaluationResult(
        status="failed" if report.failed else "evaluated",
        correct=report.correct,
        combined_score=report.combined_score,
        public_metrics=report.public,
        private_metrics=report.private,
        text_feedback=report.text_feedback,
        error=report.error,
        stdout_tail=report.stdout_tail or None,
        stderr_tail=report.stderr_tail or None,
        eval_seconds=report.seconds,
    )
    await ws.archive.save_result(program_id, result)
    await ws.archive.add_event(run_id, "evaluated", {"program": program_id, "score": report.combined_score,
                                                     "correct": report.correct, "isolation": report.isolation})
    parent_score = None
    if program.parent_id is not None:
        parent = await ws.archive.get_program(run_id, program.parent_id)
        parent_score = parent.combined_score if parent else None
    return _result(run_id, summary(await ws.program(run_id, program_id)), parent_score, best_before, notes or [])


async def _tick(progress: Progress, total: float) -> None:
    elapsed = 0.0
    while True:
        await progress(elapsed, f"evaluating ({elapsed:.0f} s of at most {total:g} s)")
        await anyio.sleep(1.0)
        elapsed += 1.0
