"""The steps of the evolution loop: sample_parent, propose_candidate, evaluate."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import numpy as np

from ..evaluators import languages
from ..store import DuplicateProgram, EvaluationResult, ProgramRecord, RunRecord
from . import canonical, markers, novelty, patches, selection
from .brief import INSPIRATION_CHARS, build_brief
from .errors import EvoError
from .flights import Flight, Then, wait
from .islands import choose_island, migrate_if_due, settle_seed
from .providers import ProviderError
from .run_state import RunState
from .models import ParentView, PatchType, ProgramSummary, ProposalResult, RunConfig, SampledParent
from .sandbox_facts import sandbox_facts
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


async def check_build(ws: Workspace, task: Any, code: str, notes: list[str]) -> None:
    """A non-Python program's compile check, in the sandbox (evaluators/languages.py): refused with the
    compiler's first errors, before anything is stored."""
    problem = await ws.executor.check_program(task, code)
    if problem is not None:
        raise EvoError(_with_notes(f"the resulting program was refused before evaluation: {problem}", notes))


def summary(row: dict[str, Any] | ProgramRecord) -> ProgramSummary:
    data = row.model_dump() if isinstance(row, ProgramRecord) else row
    return ProgramSummary.model_validate(data)


def parent_view(p: ProgramRecord, inspiration: bool = False) -> ParentView:
    """The parent whole; an inspiration without its output, and without its code past the brief's size bound."""
    code = None if inspiration and len(p.code) > INSPIRATION_CHARS else p.code
    return ParentView(id=p.id, island=p.island, generation=p.generation, combined_score=p.combined_score,
                      correct=p.correct, public_metrics=p.public_metrics, text_feedback=p.text_feedback, code=code,
                      stdout_tail=None if inspiration else p.stdout_tail)


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
    population = await (await ws.state(run_id)).population()
    island_best = population.top_ids(1, island)
    elites = population.top_ids(config.archive_size)
    ordered = [i for i in dict.fromkeys(island_best + elites) if i != parent.id]
    count = config.num_inspirations
    chosen = ordered[: max(1, count - 1)]
    rest = [i for i in ordered if i not in chosen]
    if count > 1 and rest:
        chosen.append(int(ws.rng.choice(rest)))  # one slot for a random elite: diversity
    programs = await (await ws.state(run_id)).programs(chosen)
    seen = {parent.code_hash, parent.fingerprint} - {None}  # nothing the same as the parent (overrides let twins in)
    distinct = []
    for p in programs:
        if not {p.code_hash, p.fingerprint} & seen:
            distinct.append(p)
        seen |= {p.code_hash, p.fingerprint} - {None}
    return sorted(distinct, key=lambda p: -(p.combined_score or -math.inf))


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
                        island: int | None = None, patch_type: PatchType | None = None,
                        wait_s: float | None = None, wait_facts: bool = True) -> SampledParent:
    """A parent, its brief and a ticket; `wait_s` is how long the caller's tool calls wait for an evaluation (the
    brief explains waiting when the task's evaluations may take longer); `wait_facts=False` does not wait for
    the sandbox probe to finish (the brief then says the facts are being measured)."""
    run = await ws.open_run(run_id)
    config = ws.config(run)
    strategy = strategy or config.selection
    if strategy not in selection.STRATEGIES:
        raise EvoError(f"unknown strategy {strategy!r}; use one of {', '.join(selection.STRATEGIES)}")
    if island is None:
        island = choose_island(ws, run_id, config)
    elif not 0 <= island < config.num_islands:
        raise EvoError(f"run {run_id} has islands 0 to {config.num_islands - 1}; island {island} does not exist")
    population = await ws.state_of(run).population()
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
            busy = sorted(f.program_id for f in ws.evaluations.of_run(run_id))
            then = f"wait_for(run_id={run_id}, program_ids={busy}): they are being evaluated" if busy else \
                "evaluate one first"
            raise EvoError(f"island {island} of run {run_id} has no evaluated program yet; {then}")
        parent, mode = await ws.program(run_id, failed), "fix"
    inspirations = await _inspirations(ws, run_id, config, island, parent) if mode == "improve" else []
    if mode == "fix" or patch_type is None or (patch_type == "cross" and not inspirations):
        patch_type = _suggest_patch_type(ws, config, bool(inspirations), mode)
    best_score = population.best_score()
    task = ws.task(run)
    facts = await sandbox_facts(ws, task, wait=wait_facts)
    ticket = ws.tickets.issue(run_id, parent.id, island, config.ticket_ttl_s)
    brief = build_brief(
        task_name=task.name, description=task.description, language=task.language, parent=parent,
        best_score=best_score, parent_delta_base=population.score_of(parent.parent_id), inspirations=inspirations,
        failures=await ws.archive.recent_failures(run_id, parent.id), mode=mode, patch_type=patch_type,
        recommendations=(await ws.state_of(run).meta()).recommendations,
        evaluation_s=task.timeout_s, wait_s=wait_s, island_failures=await ws.archive.island_failures(run_id, island),
        sandbox=facts, isolation=await ws.executor.isolation(), run_id=run_id, ticket=ticket,
        toolchain=languages.describe(task), island=island,
    )
    return SampledParent(run_id=run_id, ticket=ticket, strategy=strategy, island=island, mode=mode,
                         patch_type=patch_type, parent=parent_view(parent),
                         inspirations=[parent_view(p, inspiration=True) for p in inspirations], best_score=best_score,
                         time_limit_s=task.timeout_s, sandbox=facts, language=task.language, brief=brief)


def judged(config: RunConfig) -> bool:
    """Whether the run's novelty check asks a judge, the one reader of programs' embeddings."""
    return config.novelty and config.novelty_judge is not None


async def embed_code(ws: Workspace, config: RunConfig, code: str, run_id: int = 0,
                     language: str = "python") -> np.ndarray:
    """The run's embedding of a program's mutable code: its endpoint if it names one, else offline."""
    if config.embeddings is None:
        return novelty.embed(code, language=language)
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
    wait_s: float | None = None,
    novelty_override: str | None = None,
    detach: bool = False,
) -> ProposalResult:
    """Apply a change to a parent and store the new program; evaluate it unless `evaluate_now` is False, waiting
    for its result up to `wait_s` seconds (None: until it is recorded). `novelty_override` (a reason) stores a
    program the novelty check would refuse. `detach` returns once the evaluation has started (the program as
    `running`; its flight is `ws.evaluations.get(program id)`): the driver's pipeline."""
    run = await ws.open_run(run_id)
    config = ws.config(run)
    parent = await ws.program(run_id, parent_id)
    state = ws.state_of(run)
    ticket_notes, island = ws.tickets.check(ticket, run_id, parent.id,
                                            (await state.population()).islands_of(parent.id) or [parent.island])
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
        raise EvoError(_with_notes("the change leaves the program as it was; propose a change that does something",
                                   applied.notes))
    digest = code_hash(child_code)
    twin = await ws.archive.find_by_hash(run_id, digest)
    if twin is not None:
        raise EvoError(_with_notes(await novelty.exact_duplicate(ws, run_id, twin), applied.notes))
    await check_build(ws, task, child_code, applied.notes)
    # the embedding serves only the novelty judge, the fingerprint only the novelty check: a run without them
    # pays for neither (CPU-bound and sized by the proposal: off the event loop, so other calls go on)
    vector = await embed_code(ws, config, child_code, run_id, task.language) if judged(config) else None
    fingerprint = await anyio.to_thread.run_sync(canonical.fingerprint, child_code, task.language) \
        if config.novelty else None
    try:
        novelty_check = await novelty.check(ws, run_id, config, parent, island, child_code, fingerprint, vector, operator,
                                            novelty_override)
    except EvoError as exc:
        raise EvoError(_with_notes(str(exc), applied.notes)) from None
    best_before = await state.best_score()
    if evaluate_now:
        ws.evaluations.check_room()  # before storing: a refusal then leaves nothing behind
    try:
        program = await state.add_program(
            parent=parent, island=island, code=child_code, code_hash=digest,
            diff=patches.unified_diff(parent.code, child_code), patch_type=kind, description=description,
            embedding=vector, cost_usd=cost_usd, fingerprint=fingerprint, operator=operator)
    except DuplicateProgram as dup:
        raise EvoError(await novelty.exact_duplicate(ws, run_id, dup.twin_id)) from None
    ws.tickets.redeem(ticket, run_id, parent.id, program.id)
    notes = applied.notes + ticket_notes
    with anyio.CancelScope(shield=True):  # stored: its evaluation starts whatever happens to this call
        await ws.archive.add_event(run_id, "proposed", {"program": program.id, "parent": parent.id,
                                                        "operator": operator})
        flight = await start_evaluation(ws, run, program, best_before, notes) if evaluate_now else None
    if flight is not None and detach:
        result = _result(run_id, summary(program).model_copy(update={"status": "running"}), parent.combined_score,
                         best_before, notes)
    elif flight is not None:
        result = await settle(ws, flight, wait_s, progress)
    else:
        result = _result(run_id, summary(program), parent.combined_score, best_before, notes)
    result.novelty = novelty_check
    return result


def _with_notes(message: str, notes: list[str]) -> str:
    """A refusal with what applying the change noted (edits outside the markers that were dropped)."""
    return message if not notes else f"{message}. Note: {'; '.join(notes)}"


def _result(run_id: int, program: ProgramSummary, parent_score: float | None, best_before: float | None,
            notes: list[str], text_feedback: str | None = None) -> ProposalResult:
    score = program.combined_score if program.correct else None
    is_new_best = score is not None and (best_before is None or score > best_before)
    if program.status == "pending":
        next_step = f"call evaluate(run_id={run_id}, program_id={program.id}) to score it"
    elif program.status == "running":
        next_step = (f"it is still being evaluated; call wait_for(run_id={run_id}, program_ids=[{program.id}]) "
                     f"for its score")
    elif program.status == "failed" or not program.correct:
        next_step = (f"read the error and text_feedback (get_program(run_id={run_id}, program_id={program.id}) also "
                     f"has its output), then sample_parent again (or fix this program and propose it)")
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
        text_feedback=text_feedback,
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
    wait_s: float | None = None,
) -> ProposalResult:
    """Evaluate a pending (or failed) program, or join its evaluation in flight; waits up to `wait_s` (None: to
    its end) and then returns it as it stands."""
    run = await ws.run(run_id)
    program = await ws.program(run_id, program_id)
    flight = ws.evaluations.running(program_id)
    if flight is None:
        if program.status in ("evaluated", "running"):
            raise EvoError(f"program {program_id} is already {program.status}; call get_program to read its result")
        with anyio.CancelScope(shield=True):
            flight = await start_evaluation(ws, run, program, best_before, notes)
    return await settle(ws, flight, wait_s, progress)


async def start_evaluation(ws: Workspace, run: RunRecord, program: ProgramRecord, best_before: float | None = None,
                           notes: list[str] | None = None, then: Then | None = None) -> Flight:
    """Start evaluating a program of the run in the workspace, where it runs to its end and is recorded; `then`
    gets the result once it is recorded."""
    if best_before is None:
        best_before = await ws.state_of(run).best_score()
    task = ws.task(run)
    flight = Flight(run.id, program.id, task.timeout_s, best_before, list(notes or []), then=then)
    return await ws.evaluations.start(flight, lambda f: _record(ws, run, program, f))


async def settle(ws: Workspace, flight: Flight, wait_s: float | None, progress: Progress | None) -> ProposalResult:
    """The evaluation's result, waiting for it up to `wait_s` (None: to its end); at the bound, the program as it
    stands (running), with how long it has run and what to call next."""
    await wait([flight], wait_s, progress)
    if flight.done.is_set():
        if flight.error is not None:
            raise flight.error
        if flight.result is not None:
            return flight.result
    population = await (await ws.state(flight.run_id)).population()
    program = await ws.program(flight.run_id, flight.program_id)
    result = _result(flight.run_id, summary(program), population.score_of(program.parent_id), flight.best_before,
                     flight.notes)
    if program.status == "running":
        result.next_step = (
            f"program {program.id} is still being evaluated ({flight.elapsed:.0f} s so far; this task allows "
            f"{flight.timeout_s:g} s) and goes on without this call: call wait_for(run_id={flight.run_id}, "
            f"program_ids=[{program.id}]) for its result (again while it answers still running), or first "
            f"sample_parent and propose other changes, then wait_for them together")
    return result


async def _record(ws: Workspace, run: RunRecord, program: ProgramRecord, flight: Flight) -> ProposalResult:
    """Evaluate the program and store its result (a flight's body: it runs in the workspace, not in a call)."""
    run_id, program_id = run.id, program.id
    state = ws.state_of(run)
    task = state.task()
    saved = False
    try:  # from the first checkpoint on: a stop that comes early is recorded too
        population = await state.population()
        await record_contract(ws.archive, ws.contracts_recorded, run, task)
        await state.mark(program_id, "running")
        result = await ws.executor.evaluate(task, program.code)
        with anyio.CancelScope(shield=True):  # a finished evaluation is never lost to a cancellation
            evaluated_at = await state.record_result(program_id, result)
            saved = True
    finally:
        if not saved:
            with anyio.CancelScope(shield=True):
                await _cut_short(ws, state, program_id, flight)
    with anyio.CancelScope(shield=True):  # recorded: the bookkeeping that follows is part of it
        await ws.archive.add_event(run_id, "evaluated", {"program": program_id, "score": result.combined_score,
                                                         "correct": result.correct, "isolation": result.isolation})
        await migrate_if_due(ws, state, population.evaluations())
        # as saved, without reading it back (a migration moves memberships, not the row)
        recorded = program.model_copy(update={**result.model_dump(exclude={"isolation"}), "evaluated_at": evaluated_at})
        out = _result(run_id, summary(recorded), population.score_of(program.parent_id),
                      flight.best_before, flight.notes, recorded.text_feedback)
        if program.patch_type == "seed":
            await settle_seed(ws, state, out.program)
    return out


async def _cut_short(ws: Workspace, state: RunState, program_id: int, flight: Flight) -> None:
    """A stopped evaluation is recorded as failed with the reason; one cut short otherwise (the server closing,
    an error) leaves its program pending, to be evaluated again."""
    if flight.stop_reason is None:
        await state.mark(program_id, "pending")
        return
    error = f"evaluation stopped after {flight.elapsed:.1f} s: {flight.stop_reason}"
    await state.record_result(program_id, EvaluationResult(status="failed", correct=False, combined_score=None,
                                                           error=error, eval_seconds=flight.elapsed))
    await ws.archive.add_event(state.run_id, "evaluation_stopped", {"program": program_id,
                                                                    "reason": flight.stop_reason})
