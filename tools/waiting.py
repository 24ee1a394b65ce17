"""wait_for: wait in bounded calls for evaluations that outlive the calls that started them."""

from __future__ import annotations

import time

import anyio

from ..store import ProgramRecord
from .errors import EvoError
from .flights import Flight, Progress, wait
from .models import DEFAULT_WAIT_S, ProposalResult, WaitResult
from .steps import _result, summary
from .workspace import Workspace

FINISHED = ("evaluated", "failed")


async def wait_for(ws: Workspace, run_id: int, program_ids: list[int] | None = None, wait_s: float = DEFAULT_WAIT_S,
                   progress: Progress | None = None) -> WaitResult:
    """Return as soon as one of the programs (default: the run's evaluations in flight) is evaluated or failed,
    or after `wait_s` seconds; programs already finished are returned at once."""
    await ws.run(run_id)
    ids = list(dict.fromkeys(program_ids or [f.program_id for f in ws.evaluations.of_run(run_id)]))
    began = time.monotonic()
    while True:
        programs = await _programs(ws, run_id, ids)
        unfinished = [p for p in programs if p.status not in FINISHED]
        local = [f for p in unfinished if (f := ws.evaluations.running(p.id)) is not None]
        elsewhere = [p for p in unfinished if p.status == "running" and ws.evaluations.running(p.id) is None]
        left = wait_s - (time.monotonic() - began)
        if len(unfinished) < len(programs) or not (local or elsewhere) or left <= 0:
            break
        if elsewhere:  # evaluated by another process on this archive: look again every second
            await _poll(local, min(left, 1.0))
        else:
            await wait(local, left, progress)
    finished = [await _finished(ws, run_id, p) for p in programs if p.status in FINISHED]
    return WaitResult(run_id=run_id, finished=finished, unfinished=[summary(p) for p in unfinished],
                      waited_s=round(time.monotonic() - began, 3),
                      next_step=_next_step(run_id, finished, unfinished, wait_s))


async def _programs(ws: Workspace, run_id: int, ids: list[int]) -> list[ProgramRecord]:
    found = {p.id: p for p in await ws.archive.get_programs(run_id, ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise EvoError(f"run {run_id} has no program {', '.join(map(str, missing))}; call get_archive({run_id}) "
                       f"to list its programs")
    return [found[i] for i in ids]


async def _poll(local: list[Flight], seconds: float) -> None:
    if local:
        await wait(local, seconds)
    else:
        await anyio.sleep(seconds)


async def _finished(ws: Workspace, run_id: int, program: ProgramRecord) -> ProposalResult:
    flight = ws.evaluations.get(program.id)
    if flight is not None:
        await flight.done.wait()  # its record is written before its answer: a read in between would miss the answer
        if isinstance(flight.result, ProposalResult):
            return flight.result
    # finished before this process knew it, or cut short: compared with the run as it is now
    population = await (await ws.state(run_id)).population()
    best = population.best_score()
    result = _result(run_id, summary(program), population.score_of(program.parent_id), best, [], program.text_feedback)
    score = result.program.combined_score if result.program.correct else None
    result.best_score_before, result.delta_to_best = None, None
    result.is_new_best = score is not None and score == best
    return result


def _next_step(run_id: int, finished: list[ProposalResult], unfinished: list[ProgramRecord], wait_s: float) -> str:
    running = [p.id for p in unfinished if p.status == "running"]
    pending = [p.id for p in unfinished if p.status == "pending"]
    steps = []
    if finished:
        steps.append(f"read the results of program(s) {', '.join(str(r.program.id) for r in finished)}, then "
                     f"sample_parent again to build on the best")
    elif running:
        steps.append(f"none finished within {wait_s:g} s")
    if running:
        steps.append(f"program(s) {', '.join(map(str, running))} are still being evaluated: call "
                     f"wait_for(run_id={run_id}, program_ids={running}) again for them")
    if pending:
        steps.append(f"program(s) {', '.join(map(str, pending))} are pending, not being evaluated (proposed with "
                     f"evaluate=false, or the server restarted): call evaluate(run_id={run_id}, program_id=...) "
                     f"for each, or resume_run(run_id={run_id}) to evaluate every pending program of the run")
    if not steps:
        steps.append(f"nothing of run {run_id} is being evaluated; sample_parent to continue")
    return "; ".join(steps)
