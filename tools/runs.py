"""Run lifecycle tools: list_tasks, start_run, list_runs, get_run_status, stop_run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pydantic import ValidationError

from ..evaluators.sandbox import isolation_rank
from ..evaluators.task import BUILTIN_TASKS, TaskError, resolve_task
from ..store import RunRecord
from . import canonical, markers, run_notes, sandbox_facts
from .errors import EvoError, one_line
from .models import IslandStatus, ProposalResult, RunConfig, RunInfo, RunList, RunStatus, TaskInfo, TaskList
from .task_notes import task_notes
from .steps import check_syntax, code_hash, embed_code, settle, start_evaluation, summary
from .trust import all_contracts, describe, run_contracts, scoring, start_contract
from .workspace import Workspace


def run_info(run: RunRecord, contracts: list[str]) -> RunInfo:
    return RunInfo(run_id=run.id, name=run.name, task=run.task, status=run.status, status_reason=run.status_reason,
                   target_score=run.target_score,
                   created_at=run.created_at, config=run.config, scoring=scoring(contracts))


async def list_tasks(ws: Workspace) -> TaskList:
    return TaskList(tasks=[TaskInfo(name=t.name, summary=t.summary, target_score=t.target_score, kind="builtin",
                                    language=t.language) for t in BUILTIN_TASKS.values()])


def _bwrap_hint(isolation: str) -> str:
    if isolation_rank(isolation) == 1:
        return (": they share one bubblewrap sandbox, because the kernel refused namespaces of their own "
                "or because $EVOMCP_BWRAP=always")
    return (": the kernel refused user namespaces and no bubblewrap sandbox could be started (install "
            "bubblewrap: apt install bubblewrap), or isolation is turned off")


async def start_run(ws: Workspace, task: str, name: str | None = None, config: dict[str, Any] | None = None,
                    wait_s: float | None = None, then: Callable[[int], Awaitable[None]] | None = None,
                    notes: dict[str, Any] | None = None) -> RunStatus:
    """Create a run and evaluate its seed, waiting up to `wait_s` (None: until it is recorded); `then(run_id)`
    is called once the seed is recorded (and copied onto every island, or the run failed with it), which may be
    after this returned. `notes` are
    stored with the run before its seed is evaluated (a driver's settings: a process killed during the
    seed's evaluation leaves them for the next one)."""
    try:
        RunConfig.model_validate(config or {})
    except ValidationError as exc:
        raise EvoError(f"bad run config: {one_line(exc)}") from None
    unknown = sorted(set(config or {}) - set(RunConfig.model_fields))
    if unknown:
        raise EvoError(f"bad run config: unknown setting {', '.join(map(repr, unknown))} (check its spelling); the "
                       f"settings are {', '.join(RunConfig.model_fields)}")
    if len(await ws.archive.list_runs()) >= ws.max_runs:
        raise EvoError(f"this server holds its limit of {ws.max_runs} runs; continue an existing run "
                       f"(list_runs, resume_run) or start the server with a larger --max-runs")
    if "\x00" in task or "\x00" in (name or ""):
        raise EvoError("the task name or run name holds a NUL byte (\\x00); pass a built-in task name (list_tasks) "
                       "or the path of a task directory, and a plain name")
    try:
        resolved = resolve_task(task)
    except TaskError as exc:
        raise EvoError(str(exc)) from None
    run_config = RunConfig.model_validate({**resolved.run_defaults, **(config or {})})  # the caller's config wins
    isolation = await ws.executor.isolation()
    if isolation_rank(isolation) < isolation_rank(run_config.require_isolation):
        raise EvoError(
            f"this run requires isolation {run_config.require_isolation!r} but candidates here only get "
            f"{isolation!r}{_bwrap_hint(isolation)}; enable unprivileged user namespaces, or lower "
            f"require_isolation"
        )
    markers.split(resolved.initial_code, "the task's initial program")
    check_syntax(resolved.initial_code, resolved.language, "the task's initial program")
    run = await ws.archive.create_run(
        name=name or f"{resolved.name}",
        task=resolved.name,
        task_path=resolved.source,
        config=run_config.model_dump(),
        target_score=resolved.target_score,
    )
    if notes:
        await ws.archive.set_notes(run.id, notes)
    await start_contract(ws.archive, run.id, resolved)
    ws.contracts_recorded.add(run.id)
    try:
        seed_vector = await embed_code(ws, run_config, resolved.initial_code, run.id, resolved.language)
    except EvoError as exc:
        await ws.archive.set_run_status(run.id, "failed", str(exc))
        raise
    seed = await ws.state_of(run).add_program(
        parent=None, island=0, code=resolved.initial_code, code_hash=code_hash(resolved.initial_code),
        patch_type="seed", description="initial program", embedding=seed_vector,
        fingerprint=canonical.fingerprint(resolved.initial_code, resolved.language))
    await ws.archive.add_event(run.id, "run_started", {"task": resolved.name, "seed": seed.id})

    async def seeded(result: ProposalResult) -> None:
        if then is not None:
            await then(run.id)

    with anyio.CancelScope(shield=True):  # stored: the seed's evaluation starts whatever happens to this call
        flight = await start_evaluation(ws, run, seed, then=seeded)
    await sandbox_facts.prefetch(ws, ws.task(run))  # for the briefs, beside the seed's evaluation
    result = await settle(ws, flight, wait_s, None)
    if result.program.status == "failed":
        raise EvoError(
            f"the task's initial program failed its evaluation, so run {run.id} failed: "
            f"{result.program.error}. Fix {resolved.files} and start a new run"
        )
    return await get_run_status(ws, run.id)


async def list_runs(ws: Workspace) -> RunList:
    records = await ws.archive.list_runs()
    contracts = await all_contracts(ws.archive, records)
    return RunList(runs=[run_info(r, contracts[r.id]) for r in records])


async def get_run_status(ws: Workspace, run_id: int) -> RunStatus:
    run = await ws.run(run_id)
    state = ws.state_of(run)
    # the driver's note before the counts: a driver that says it finished has its last evaluations counted
    driver = await run_notes.driver(ws.archive, run_id)
    population = await state.population()
    counts = population.counts()
    best = await state.best_program()
    tickets = sum(ws.tickets.in_flight(run_id).values())
    best_score = best.combined_score if best else None
    models = await ws.archive.llm_call_stats(run_id)
    contracts = await run_contracts(ws.archive, run)
    return RunStatus(
        run=run_info(run, contracts),
        counts=counts,
        evaluations_finished=population.evaluations(),
        candidates_evaluated=population.candidates_evaluated(),
        in_flight=counts.get("running", 0) + counts.get("pending", 0),
        tickets_outstanding=tickets,
        time_limit_s=_time_limit(ws, run),
        best=summary(best) if best else None,
        target_score=run.target_score,
        gap_to_target=None if best_score is None or run.target_score is None else run.target_score - best_score,
        isolation=await ws.executor.isolation() or await ws.archive.last_isolation(run_id) or "not measured",
        novelty_rejections=await ws.archive.count_events(run_id, "novelty_rejected"),
        cost_usd=await state.cost_usd(),
        models=models,
        driver=driver,
        islands={i: IslandStatus(**stats) for i, stats in population.island_stats().items()},
        scoring=scoring(contracts),
        scoring_detail=describe(contracts),
        evaluating=sorted(f.program_id for f in ws.evaluations.of_run(run_id)),
        notes=_notes(ws, run),
    )


def _notes(ws: Workspace, run: RunRecord) -> dict[str, str]:
    try:
        return task_notes(ws.task(run))
    except EvoError:  # the task folder is gone
        return {}


def _time_limit(ws: Workspace, run: RunRecord) -> float | None:
    try:
        return ws.task(run).timeout_s
    except EvoError:  # the task folder is gone: the status is still worth reading
        return None


async def stop_run(ws: Workspace, run_id: int) -> RunStatus:
    """Stop a run: new programs are refused, and its evaluations in flight end, recorded as failed."""
    run = await ws.run(run_id)
    if run.status == "running":
        await ws.archive.set_run_status(run_id, "stopped", "stop_run")
        await ws.archive.add_event(run_id, "run_stopped", {"reason": "stop_run"})
    await ws.evaluations.stop_all(run_id, f"run {run_id} was stopped (stop_run)")
    return await get_run_status(ws, run_id)


async def resume_run(ws: Workspace, run_id: int) -> RunStatus:
    """Open a stopped or interrupted run for new programs again; its archive is kept as it was. Programs left
    pending (by a server that stopped while evaluating them) are evaluated again, in the background."""
    run = await ws.run(run_id)
    if run.status != "running":
        await ws.archive.set_run_status(run_id, "running")
        await ws.archive.add_event(run_id, "run_resumed", {"was": run.status})
    state = ws.state_of(run)
    if not ws.evaluations.of_run(run_id):  # read back what SQLite holds: a write that failed left nothing
        await state.reload()
    repaired = await state.place_seed()
    if repaired:
        await ws.archive.add_event(run_id, "islands_seeded", {"islands": repaired, "why": "resumed after a stop "
                                                              "between the seed's record and its placement on every island"})
    for program_id in await ws.archive.pending_ids(run_id, running_too=True):  # not in flight here: left over
        if ws.evaluations.running(program_id) is None:
            with anyio.CancelScope(shield=True):
                await start_evaluation(ws, run, await ws.program(run_id, program_id))
    try:
        await sandbox_facts.prefetch(ws, ws.task(run))
    except EvoError:  # a task that cannot be loaded any more: said by the steps that need it
        pass
    return await get_run_status(ws, run_id)
