"""The steps of the evolution loop: sample_parent, propose_candidate, evaluate."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import numpy as np

from ..store import DuplicateProgram, EvaluationResult, ProgramRecord, RunRecord
from . import markers, novelty, patches, selection
from .brief import build_brief
from .errors import EvoError
from .islands import choose_island, migrate_if_due
from .providers import ProviderError
from .models import NoveltyCheck, ParentView, PatchType, ProgramSummary, ProposalResult, RunConfig, SampledParent
from .trust import record_contract
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


def _add_in_flight(ids: np.ndarray, children: np.ndarray, in_flight: dict[int, int]) -> np.ndarray:
    """Children counts plus the parents' open tickets (few tickets: touch only their rows)."""
    children = children.astype(float)
    for parent_id, count in in_flight.items():
        children[ids == parent_id] += count
    return children


async def _inspirations(ws: Workspace, run_id: int, config: RunConfig, island: int,
                        parent: ProgramRecord) -> list[ProgramRecord]:
    """The island's best, then elites of the whole run (the top ones and a random one), in score order."""
    if config.num_inspirations == 0:
        return []
    population = await ws.population(run_id)
    island_best = population.top_ids(1, island)
    elites = population.top_ids(config.archive_size)
    ordered = [i for i in dict.fromkeys(island_best + elites) if i != parent.id]
    count = config.num_inspirations
    chosen = ordered[: max(1, count - 1)]
    rest = [i for i in ordered if i not in chosen]
    if count > 1 and rest:
        chosen.append(int(ws.rng.choice(rest)))  # one slot for a random elite: diversity
    programs = await ws.archive.get_programs(run_id, chosen)
    return sorted(programs, key=lambda p: -(p.combined_score or -math.inf))


def _suggest_patch_type(ws: Workspace, config: RunConfig, has_inspirations: bool, mode: str) -> PatchType:
    if mode == "fix":
        return "diff"
    mix = {k: v for k, v in config.patch_mix.items() if v > 0 and (k != "cross" or has_inspirations)}
    if not mix:
        return "diff"
    kinds = list(mix)
    weights = np.array([mix[k] for k in kinds], dtype=float)
    return kinds[int(ws.rng.choice(len(kinds), p=weights / weights.sum()))]


async def sample_parent(ws: Workspace, run_id: int, strategy: str | None = None,
                        island: int | None = None, patch_type: PatchType | None = None) -> SampledParent:
    run = await ws.open_run(run_id)
    config = ws.config(run)
    strategy = strategy or config.selection
    if strategy not in selection.STRATEGIES:
        raise EvoError(f"unknown strategy {strategy!r}; use one of {', '.join(selection.STRATEGIES)}")
    if island is None:
        island = choose_island(ws, run_id, config)
    elif not 0 <= island < config.num_islands:
        raise EvoError(f"run {run_id} has islands 0 to {config.num_islands - 1}; island {island} does not exist")
    population = await ws.population(run_id)
    ids, scores, children, generations = population.pool(island)
    mode = "improve"
    if len(ids):
        children = _add_in_flight(ids, children, ws.tickets.in_flight(run_id))
        index = selection.choose(ws.rng, strategy, scores, children, generations, alpha=config.power_law_alpha,
                                 lam=config.weighted_lambda, width=config.beam_width)
        parent = await ws.program(run_id, int(ids[index]))
    else:
        failed = await ws.archive.latest_failed(run_id, island)
        if failed is None:
            raise EvoError(f"island {island} of run {run_id} has no evaluated program yet; evaluate one first")
        parent, mode = await ws.program(run_id, failed), "fix"
    inspirations = await _inspirations(ws, run_id, config, island, parent) if mode == "improve" else []
    if mode == "fix" or patch_type is None or (patch_type == "cross" and not inspirations):
        patch_type = _suggest_patch_type(ws, config, bool(inspirations), mode)
    best_score = population.best_score()
    task = ws.task(run)
    brief = build_brief(
        task_name=task.name, description=task.description, language=task.language, parent=parent,
        best_score=best_score, parent_delta_base=population.score_of(parent.parent_id), inspirations=inspirations,
        failures=await ws.archive.recent_failures(run_id, parent.id), mode=mode, patch_type=patch_type,
        recommendations=((await ws.archive.get_note(run_id, "meta")) or {}).get("recommendations"),
    )
    ticket = ws.tickets.issue(run_id, parent.id, island, config.ticket_ttl_s)
    return SampledParent(run_id=run_id, ticket=ticket, strategy=strategy, island=island, mode=mode,
                         patch_type=patch_type, parent=parent_view(parent),
                         inspirations=[parent_view(p) for p in inspirations], best_score=best_score, brief=brief)


async def _check_novelty(ws: Workspace, run_id: int, config: RunConfig, island: int, vector: np.ndarray,
                         operator: str | None, code: str | None = None) -> NoveltyCheck:
    if not config.novelty:
        return NoveltyCheck(checked=False, note="novelty checks are off for this run")
    if operator is not None and operator in config.novelty_exempt:
        return NoveltyCheck(checked=False, note=f"operator {operator!r} is exempt (run config novelty_exempt)")
    if not ws.novelty.loaded(run_id):
        ws.novelty.load(run_id, await ws.archive.embeddings(run_id, per_island=ws.novelty.window))
    nearest, similarity = ws.novelty.nearest(run_id, island, vector)
    check = NoveltyCheck(checked=True, nearest_id=nearest, similarity=similarity)
    if nearest is None or similarity <= config.novelty_threshold:
        return check
    verdict = ""
    if config.novelty_judge is not None and code is not None:
        twin = await ws.program(run_id, nearest)
        try:
            novel, verdict = await ws.providers.judge_novel(run_id, config.novelty_judge, markers.mutable_code(code),
                                                            markers.mutable_code(twin.code))
        except ProviderError as exc:
            novel, verdict = False, f"the novelty judge failed ({exc}), so the threshold decides"
        if novel:
            await ws.archive.add_event(run_id, "novelty_judged_novel", {"nearest": nearest, "similarity": similarity,
                                                                        "reason": verdict[:500]})
            check.note = f"above the threshold, but the judge found it meaningfully different: {verdict[:300]}"
            return check
    await ws.archive.add_event(run_id, "novelty_rejected", {"nearest": nearest, "similarity": similarity,
                                                            "island": island, "judge": verdict[:500] or None})
    raise EvoError(
        f"too similar to program {nearest} of island {island} (cosine similarity {similarity:.5f} > "
        f"threshold {config.novelty_threshold}){'; the judge said: ' + verdict[:300] if verdict else ''}; "
        f"nothing was stored. Try a more substantial change (another idea, not a re-wording)"
    )


async def embed_code(ws: Workspace, config: RunConfig, code: str, run_id: int = 0) -> np.ndarray:
    """The run's embedding of a program's mutable code: its endpoint if it names one, else offline."""
    if config.embeddings is None:
        return novelty.embed(code)
    try:
        return await ws.providers.embed(run_id, config.embeddings, markers.mutable_code(code))
    except ProviderError as exc:
        raise EvoError(f"the novelty check needs an embedding and the run's embeddings endpoint failed: {exc}; "
                       f"nothing was stored. Retry, or start the run without `embeddings`") from None


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
    operator: str | None = None,
    cost_usd: float = 0.0,
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
    applied = patches.apply_diff(parent.code, text) if patch is not None else patches.apply_full(parent.code, text)
    child_code = applied.code
    if len(child_code.encode()) > config.max_code_bytes:
        raise EvoError(f"the resulting program is {len(child_code.encode())} bytes, over this run's limit of "
                       f"{config.max_code_bytes}")
    markers.split(child_code, "the resulting program")
    task = ws.task(run)
    check_syntax(child_code, task.language, "the resulting program")
    if child_code == parent.code:
        raise EvoError("the change leaves the program as it was; propose a change that does something")
    digest = code_hash(child_code)
    twin = await ws.archive.find_by_hash(run_id, digest)
    if twin is not None:
        raise EvoError(f"this program is an exact duplicate of program {twin}; propose a different change")
    vector = await embed_code(ws, config, child_code, run_id)
    novelty_check = await _check_novelty(ws, run_id, config, parent.island, vector, operator, child_code)
    population = await ws.population(run_id)
    best_before = population.best_score()
    try:
        program = await ws.archive.insert_program(
            run_id=run_id, parent_id=parent.id, island=parent.island, generation=parent.generation + 1,
            code=child_code, code_hash=digest, diff=patches.unified_diff(parent.code, child_code),
            patch_type=kind, description=description, embedding=vector.tobytes(), cost_usd=cost_usd,
        )
    except DuplicateProgram as dup:
        raise EvoError(f"this program is an exact duplicate of program {dup.twin_id}; propose a different change"
                       ) from None
    population.add(program.id, parent.id, program.island, program.generation)
    ws.novelty.add(run_id, program.island, program.id, vector)
    ws.tickets.redeem(ticket, run_id, parent.id)
    await ws.archive.add_event(run_id, "proposed", {"program": program.id, "parent": parent.id,
                                                    "operator": operator})
    if evaluate_now:
        result = await _evaluate(ws, run, program, progress, best_before, applied.notes)
    else:
        result = _result(run_id, summary(program), parent.combined_score, best_before, applied.notes)
    result.novelty = novelty_check
    return result


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
    return await _evaluate(ws, run, program, progress, best_before, notes)


async def _evaluate(ws: Workspace, run: RunRecord, program: ProgramRecord, progress: Progress | None,
                    best_before: float | None, notes: list[str] | None) -> ProposalResult:
    """Evaluate a program of the run that is neither evaluated nor running, and store its result."""
    run_id, program_id = run.id, program.id
    population = await ws.population(run_id)
    if best_before is None:
        best_before = population.best_score()
    task = ws.task(run)
    await record_contract(ws.archive, ws.contracts_recorded, run, task)
    saved = False
    try:
        await ws.archive.set_program_status(program_id, "running")
        population.set_status(program_id, "running")
        async with anyio.create_task_group() as tg:
            if progress is not None:
                tg.start_soon(_tick, progress, task.timeout_s)
            report = await ws.executor.evaluate(task, program.code)
            tg.cancel_scope.cancel()
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
        with anyio.CancelScope(shield=True):  # a finished evaluation is never lost to a cancellation
            await ws.archive.save_result(program_id, result)
            population.set_result(program_id, result.status, result.correct, result.combined_score)
            saved = True
    finally:
        if not saved:  # cancelled or broken: leave the program ready to evaluate again
            with anyio.CancelScope(shield=True):
                await ws.archive.set_program_status(program_id, "pending")
                population.set_status(program_id, "pending")
    await ws.archive.add_event(run_id, "evaluated", {"program": program_id, "score": report.combined_score,
                                                     "correct": report.correct, "isolation": report.isolation})
    counts = population.counts()
    await migrate_if_due(ws, run, ws.config(run), counts.get("evaluated", 0) + counts.get("failed", 0))
    return _result(run_id, summary(await ws.program(run_id, program_id)), population.score_of(program.parent_id),
                   best_before, notes or [])


async def _tick(progress: Progress, total: float) -> None:
    elapsed = 0.0
    while True:
        await progress(elapsed, f"evaluating ({elapsed:.0f} s of at most {total:g} s)")
        await anyio.sleep(1.0)
        elapsed += 1.0
