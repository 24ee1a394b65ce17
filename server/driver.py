"""The built-in driver: runs the evolution loop on the server with the same tool functions an agent uses.

Per step: sample_parent -> a bandit picks the arm (a model of the ensemble, or the
offline `perturb` operator) and a second bandit the patch type -> the arm writes a
change from the brief -> propose_candidate -> evaluate -> both bandits learn from the
child's improvement over its parent. Budgets (evaluations, cost, wall time, target)
are checked before each step; the cost cap reserves the worst case of calls in
flight, so it is never exceeded. All state lives in the archive (bandits, counters,
scratchpad), so a driver resumes where it stopped.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, ConfigDict, Field

from ..store import StorageError
from ..tools import patches, run_notes, sandbox_facts, steps
from ..tools.bandit import Bandit, BanditState
from ..tools.errors import EvoError
from ..tools.flights import Flight
from ..tools.models import ProposalResult
from ..tools.run_notes import DriverNote
from ..tools.perturb import OPERATOR as PERTURB, perturb
from ..tools.workspace import Workspace
from .ensemble import Ensemble, ModelError, ModelSpec, Reply

log = logging.getLogger("evomcp.driver")

SYSTEM_PROMPT = ("You are an expert programmer improving a program by evolution. Follow the brief exactly and "
                 "answer in the format it asks for.")
META_PROMPT = """You review an evolutionary search over programs. Below are the most recent evaluated programs
(score, change description, error). Write (1) a short scratchpad of what worked and what did not,
then (2) at most 5 concrete recommendations for the next changes, one per line starting with "- ".

Task: {task}
Best score so far: {best}

{rows}"""



class DriverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec] = Field(default_factory=list, description="the LLM ensemble; may be empty")
    perturb: bool = Field(True, description="include the offline perturb operator as an arm")
    max_evaluations: int | None = Field(None, ge=1, description="stop after this many evaluated candidates")
    max_cost_usd: float | None = Field(None, ge=0, description="never spend more than this on model calls")
    max_wall_s: float | None = Field(None, gt=0, description="stop after this many seconds of driving")
    target_score: float | None = Field(None, description="stop when a correct program reaches this score")
    concurrency: int = Field(2, ge=1, le=64, description="candidates worked on at once")
    meta_every: int = Field(0, ge=0, description="every K evaluations a model writes recommendations "
                                                 "(0: off; needs a model)")
    max_idle_steps: int = Field(50, ge=1, description="stop after this many steps in a row without a new "
                                                      "evaluated candidate (a broken endpoint must not spin)")
    offline_fallback: bool = Field(False, description="when every model is failing, keep driving with the offline "
                                                      "perturb operator alone (default: stop the run and say why)")

# a model whose last call failed is failing (and shown so at once) until a call succeeds. It is given up on
# after one fatal error (a refused key, an unknown model) or FAILING_AFTER calls in a row to an endpoint that
# could not even be reached; when every model is given up on, the driver stops: a dead endpoint helps nobody.
# Overload and server errors (429, 5xx, timeouts) pass: they are shown as failing, never end a run.
FAILING_AFTER = 3
# a rate-limited call is tried this many times in all before its step fails; RAISE_AFTER good calls in a row
# give back one of the calls in flight that rate limits took away
RATE_LIMIT_TRIES, RAISE_AFTER = 6, 4
# the driver's state (bandits, counters) is saved after a step at most this often, and always at its end: a
# crash loses at most this much of the bandits' learning, never a program or a result
SAVE_EVERY_S = 0.25


class DriverStatus(DriverNote):
    """The driver's status as its note (tools/run_notes.py) holds it, with the config it drives with."""

    config: DriverConfig


@dataclass(eq=False)
class _Step:
    """One step of a worker: whether it holds a place in the evaluation backlog, and its evaluation."""

    backlog: bool = False
    flight: Flight | None = None


class Driver:
    """Drives one run until a budget is reached or stop() is called."""

    def __init__(self, ws: Workspace, run_id: int, config: DriverConfig,
                 on_result: Callable[[ProposalResult | None, Driver], None] | None = None, resume: bool = False):
        self.ws = ws
        self.run_id = run_id
        self.config = config
        self.ensemble = Ensemble(config.models, ws.archive)
        self.on_result = on_result
        self.arms = ([PERTURB] if config.perturb else []) + [m.name for m in config.models]
        if not self.arms:
            raise EvoError("the driver has no arm: configure at least one model or keep perturb on")
        self.ensemble.check(budgeted=config.max_cost_usd is not None)
        self.status = DriverStatus(state="running", config=config)
        self._arm_bandit = Bandit()
        self._patch_bandit = Bandit(cost_weight=0.0)
        self._reserved = 0.0
        self._spent = 0.0
        self._started = time.monotonic()
        self._stop = anyio.Event()
        self._resume = resume
        self._last_meta = 0
        self._idle_steps = 0
        self._last_failure = ""
        self._model_failures: dict[str, int] = {}  # failed calls in a row, per model
        self._model_unreachable: dict[str, bool] = {}  # whether each of those failures was an unreachable endpoint
        self._failed = False  # driving ended because it could not go on (models failing, nothing proposed)
        self._failure_reasons: set[str] = set()
        self._cost_capped = False
        self.done = anyio.Event()
        # proposals stored and not yet evaluated, at most: every slot busy and as many ready behind them
        self._backlog = anyio.Semaphore(max(1, 2 * ws.executor.slots))
        self._step_ended = anyio.Event()
        self._tg: TaskGroup | None = None
        self._saved_at = 0.0
        self._calls = anyio.CapacityLimiter(config.concurrency)  # model calls in flight; lowered by rate limits
        self._good_calls = 0
        self._lowered_at = 0.0  # when rate limits last lowered the calls in flight

    # state kept in the archive ------------------------------------------------

    async def _load(self) -> None:
        archive = self.ws.archive
        for note, bandit in ((run_notes.ARM_BANDIT, self._arm_bandit), (run_notes.PATCH_BANDIT, self._patch_bandit)):
            saved = await archive.get_note(self.run_id, note)
            if saved:
                bandit.state = BanditState.model_validate(saved)
                for arm in bandit.state.arms.values():
                    arm.pending = 0  # pulls in flight died with the previous process
        self._spent = await archive.llm_cost(self.run_id)
        saved = await archive.get_note(self.run_id, run_notes.DRIVER)
        if self._resume and saved and saved.get("baseline_evaluated") is not None:
            previous = DriverStatus.model_validate(saved)
            self.status.baseline_evaluated = previous.baseline_evaluated
            self.status.refused = previous.refused
        else:
            self.status.baseline_evaluated = await self._evaluated()
        self.status.evaluations = await self._evaluated() - self.status.baseline_evaluated
        self._last_meta = (await (await self.ws.state(self.run_id)).meta()).at

    async def _save(self) -> None:
        self._saved_at = time.monotonic()
        self.status.evaluations = await self._evaluated() - (self.status.baseline_evaluated or 0)
        self.status.arms = self._arm_bandit.summary()
        self.status.patch_types = self._patch_bandit.summary()
        self.status.cost_usd = self._spent
        self.status.reserved_usd = self._reserved
        await self.ws.archive.set_notes(self.run_id, {run_notes.ARM_BANDIT: self._arm_bandit.state.model_dump(),
                                                      run_notes.PATCH_BANDIT: self._patch_bandit.state.model_dump(),
                                                      run_notes.DRIVER: self.status.model_dump(mode="json")})

    async def _evaluated(self) -> int:
        """Candidates of the run evaluated so far (the seed is not one): budgets count these."""
        return await (await self.ws.state(self.run_id)).candidates_evaluated()

    # budgets ----------------------------------------------------------------

    async def _budget_reason(self) -> str | None:
        c = self.config
        if self._stop.is_set():
            return "stopped by request"
        if self._cost_capped:
            return f"cost cap of ${self.config.max_cost_usd:g} reached"
        run = await self.ws.run(self.run_id)
        if run.status != "running":
            self._stop.set()  # someone else ended it (stop_run): the driver stopped, it did not finish
            return f"the run is {run.status}{f' ({run.status_reason})' if run.status_reason else ''}"
        if not self.arms:
            return self._failure(f"no usable arm left (last failure: {self._last_failure})")
        if self._models_all_failing():
            failing = "; ".join(f"{name}: {why}" for name, why in self.status.failing_models.items())
            return self._failure(f"every model is failing ({failing}); fix the endpoint, key or model id and resume "
                                 f"the run, or ask for the offline operator alone (offline_fallback, CLI "
                                 f"--offline-fallback)")
        if self._idle_steps >= c.max_idle_steps:
            return self._failure(f"{self._idle_steps} steps in a row produced no candidate (last failure: "
                                 f"{self._last_failure})")
        if c.max_wall_s is not None and time.monotonic() - self._started >= c.max_wall_s:
            return f"wall-time budget of {c.max_wall_s:g} s reached"
        if c.max_evaluations is not None:
            if await self._evaluated() - (self.status.baseline_evaluated or 0) >= c.max_evaluations:
                return f"evaluation budget of {c.max_evaluations} reached"
        target = c.target_score
        if target is not None:
            best = await (await self.ws.state(self.run_id)).best_score()
            if best is not None and best >= target:
                return f"target score {target!r} reached"
        return None

    def _failure(self, reason: str) -> str:
        """A reason to stop that means driving could not go on: the driver ends `failed` if it is the first."""
        self._failure_reasons.add(reason)
        return reason

    async def _budget_taken(self) -> bool:
        """The steps in flight may fill the evaluation budget: start none until they are done (one that
        produces no candidate leaves room for another, so the budget is met exactly)."""
        c = self.config
        return c.max_evaluations is not None and self.status.in_flight > 0 and \
            await self._evaluated() - (self.status.baseline_evaluated or 0) + self.status.in_flight >= c.max_evaluations

    def _reserve(self, arm: str, prompt: str) -> float | None:
        """Reserve the worst-case cost of a call; None when it would break the cap."""
        if arm == PERTURB or self.config.max_cost_usd is None:
            return 0.0
        worst = self.ensemble.specs[arm].worst_case_cost(len(prompt))
        if self._spent + self._reserved + worst > self.config.max_cost_usd:
            return None
        self._reserved += worst
        return worst

    # the loop ---------------------------------------------------------------

    async def run(self) -> DriverStatus:
        """Drive until a budget, stop() or a storage failure; the state and reason end in `status`. A storage
        failure (a full disk) ends the driver as `failed` without raising: the archive keeps what was
        committed, and resuming once the cause is fixed continues from there."""
        try:
            await self._load()
            await self._save()  # the baseline is kept from the first moment: budgets count across restarts
            try:  # the briefs' sandbox facts, measured beside the first steps (a resumed driver's too)
                await sandbox_facts.prefetch(self.ws, (await self.ws.state(self.run_id)).task())
            except EvoError:
                pass  # a task that cannot be loaded: the first step says so
            if self.config.models:  # a second of imports, off the event loop (other runs and tools go on)
                await anyio.to_thread.run_sync(importlib.import_module, "openai")
            await self._evaluate_leftovers()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for _ in range(self.config.concurrency):
                    tg.start_soon(self._worker)
        except StorageError as exc:
            self._fail(exc)
        except BaseException:
            self.status.state = "interrupted"
            self.status.reason = self.status.reason or "the server stopped while the run was driven"
            with anyio.CancelScope(shield=True):
                try:
                    await self._save()
                    run = await self.ws.archive.get_run(self.run_id)
                    if run is not None and run.status == "running":  # resume_run or --resume-drivers reopen it
                        await self.ws.archive.set_run_status(self.run_id, "interrupted", self.status.reason)
                        await self.ws.archive.add_event(self.run_id, "run_interrupted",
                                                        {"reason": self.status.reason})
                except StorageError as exc:
                    log.warning("run %d: %s", self.run_id, exc)
                await self.ensemble.aclose()
                self.done.set()
            raise
        if self.status.state == "running":
            self.status.state = "failed" if self._failed else "stopped" if self._stop.is_set() else "finished"
        try:  # every end is recorded (a storage failure's too, where the archive takes it again)
            await self._save()
        except StorageError as exc:
            if self.status.state != "failed":
                self._fail(exc)
        await self.ensemble.aclose()
        self.done.set()
        return self.status

    def _fail(self, exc: BaseException) -> None:
        """End driving for a cause outside the driver (the archive cannot be written): say so, lose nothing."""
        self.status.state = "failed"
        self.status.reason = str(exc)
        self._stop.set()
        log.error("driver of run %d stopped: %s", self.run_id, exc)

    def _models_all_failing(self) -> bool:
        """Models were configured, none of them works now, and the offline operator was not asked to go on alone."""
        models = [m.name for m in self.config.models]
        if not models or self.config.offline_fallback:
            return False
        return all(name not in self.arms or self._given_up(name) for name in models)

    def _given_up(self, arm: str) -> bool:
        failures = self._model_failures.get(arm, 0)
        return failures >= FAILING_AFTER and self._model_unreachable.get(arm, False)

    def stop(self) -> None:
        self._stop.set()

    async def _evaluate_leftovers(self) -> None:
        """Programs proposed but never evaluated (the process died in between) are evaluated first."""
        for program_id in await self.ws.archive.pending_ids(self.run_id):
            try:
                await steps.evaluate(self.ws, self.run_id, program_id)
            except EvoError:
                pass

    async def _worker(self) -> None:
        """One step after another: sample, change (a model call or perturb), propose. A proposal's evaluation
        goes on without the worker (the pipeline): the worker starts its next step while the evaluation runs,
        and `_learn` takes the result when it is recorded."""
        try:
            while True:
                reason = await self._budget_reason()
                if reason is not None:
                    if self.status.reason is None:
                        self.status.reason = reason
                        self._failed = reason in self._failure_reasons
                    return
                if await self._budget_taken():
                    if self.status.in_flight > 0:  # checked again: _budget_taken may have waited for the archive
                        await self._step_ended.wait()
                    continue
                self.status.in_flight += 1
                step = _Step()
                try:
                    await self._step(step)
                finally:
                    if step.flight is None:  # no evaluation to wait for: the step ends here
                        self._end_step(step)
                if step.flight is None:
                    await self._after(None)
        except StorageError as exc:  # the other workers stop at their next budget check
            if self.status.state != "failed":
                self._fail(exc)

    def _end_step(self, step: _Step) -> None:
        self.status.in_flight -= 1
        if step.backlog:
            self._backlog.release()
        self._step_ended.set()  # wakes workers waiting for room in the budget
        self._step_ended = anyio.Event()

    async def _after(self, result: ProposalResult | None) -> None:
        await self._maybe_meta()
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:  # and at the end: run() saves the final state
            await self._save()
        if self.on_result is not None:
            self.on_result(result, self)

    async def _step(self, step: _Step) -> None:
        ws, run_id = self.ws, self.run_id
        arm = self._arm_bandit.choose(self.arms, ws.rng)
        patch_kind = self._patch_bandit.choose(["diff", "full", "cross"], ws.rng) if arm != PERTURB else None
        try:
            sampled = await steps.sample_parent(ws, run_id, patch_type=patch_kind, wait_facts=False)
        except EvoError as exc:
            self._arm_bandit.release(arm)
            if patch_kind:
                self._patch_bandit.release(patch_kind)
            self.status.refused += 1
            await ws.archive.add_event(run_id, "driver_skip", {"reason": str(exc)})
            await anyio.sleep(0.2)
            return
        if patch_kind is not None and sampled.patch_type != patch_kind:
            # fix mode overrode the suggestion: this step teaches the patch-type bandit nothing
            self._patch_bandit.release(patch_kind)
            patch_kind = None
        cost = 0.0  # of this step's model call, kept even when its proposal is refused
        result: ProposalResult | None = None
        try:
            if arm == PERTURB:
                change = perturb(sampled.parent.code, ws.rng, language=sampled.language)
                if change is None:
                    raise EvoError("perturb found no numeric literal to change")
                code, description = change
                await self._room(step)
                if self._stop.is_set():
                    return self._drop(step, arm, patch_kind, sampled)
                result = await steps.propose_candidate(ws, run_id, sampled.parent.id, code=code, patch_type="full",
                                                       description=description, ticket=sampled.ticket,
                                                       operator=PERTURB, detach=True)
            else:
                call = await self._complete(arm, sampled.brief, "mutation")
                if call is None:
                    self._cost_capped = True
                    raise ModelError("cost cap reached: no further model calls")
                reply, call_id = call
                cost = reply.cost_usd
                await self._room(step)
                if self._stop.is_set():
                    return self._drop(step, arm, patch_kind, sampled)
                result = await self._propose_reply(arm, sampled, reply, call_id)
        except (EvoError, ModelError) as exc:
            self.status.refused += 1
            self._last_failure = str(exc)[:300]
            await ws.archive.add_event(run_id, "proposal_failed", {"arm": arm, "reason": str(exc)[:1000]})
            ws.tickets.redeem(sampled.ticket, run_id, sampled.parent.id)
            if isinstance(exc, ModelError) and exc.fatal and arm in self.arms:
                self.arms.remove(arm)
                await ws.archive.add_event(run_id, "arm_disabled", {"arm": arm, "reason": str(exc)[:1000]})
        flight = ws.evaluations.get(result.program.id) if result is not None else None
        if flight is None:  # nothing to evaluate: the bandits learn that the step gave nothing
            self._idle_steps += 1
            self._learn(arm, patch_kind, None, cost)
            return
        step.flight = flight
        self._tg.start_soon(self._settle, step, flight, arm, patch_kind, sampled.parent.combined_score, cost)

    async def _room(self, step: _Step) -> None:
        """Wait until fewer evaluations are outstanding than the backlog allows (a change in hand waits here,
        after its model call: calls never wait for evaluations, and a slot that frees finds the next candidate
        stored and ready)."""
        await self._backlog.acquire()
        step.backlog = True

    def _drop(self, step: _Step, arm: str, patch_kind: str | None, sampled: Any) -> None:
        """The driver was stopped while this step waited for room: its change is not stored."""
        self._arm_bandit.release(arm)
        if patch_kind is not None:
            self._patch_bandit.release(patch_kind)
        self.ws.tickets.redeem(sampled.ticket, self.run_id, sampled.parent.id)

    async def _settle(self, step: _Step, flight: Flight, arm: str, patch_kind: str | None,
                      parent_score: float | None, cost: float) -> None:
        """Wait for a proposal's evaluation to be recorded, then let the bandits learn from it. An evaluation
        that could not be recorded counts as a step without a candidate (a storage failure ends the driver)."""
        try:
            await flight.done.wait()
        finally:
            self._end_step(step)
        result = flight.result
        if result is None:
            self._idle_steps += 1
            if flight.error is not None:
                self._last_failure = f"the evaluation of program {flight.program_id} failed: {flight.error}"[:300]
                if isinstance(flight.error, StorageError) and self.status.state != "failed":
                    self._fail(flight.error)
        else:
            self._idle_steps = 0
        improvement = None
        if result is not None and result.program.correct and result.program.combined_score is not None:
            improvement = result.program.combined_score - (parent_score if parent_score is not None else 0.0)
        self._learn(arm, patch_kind, improvement, cost)
        try:
            await self._after(result)
        except StorageError as exc:
            if self.status.state != "failed":
                self._fail(exc)

    def _learn(self, arm: str, patch_kind: str | None, improvement: float | None, cost: float) -> None:
        self._arm_bandit.update(arm, improvement, cost)
        if patch_kind is not None:
            self._patch_bandit.update(patch_kind, improvement)

    async def _complete(self, arm: str, prompt: str, purpose: str) -> tuple[Reply, int] | None:
        """One model call within the cost cap, recorded in the archive (failed ones too); None: over the cap.

        A rate-limited call (HTTP 429, after the client's own retries) halves the calls the driver keeps in
        flight (once for all the calls that were in flight together) and is tried again after the endpoint's Retry-After (or a backoff), up to RATE_LIMIT_TRIES
        times, so overload slows the run down instead of failing its steps; every RAISE_AFTER good calls in a
        row give back one call in flight, up to the driver's concurrency."""
        for attempt in range(RATE_LIMIT_TRIES):
            asked = time.monotonic()
            try:
                return await self._call(arm, prompt, purpose)
            except ModelError as exc:
                if not exc.rate_limited or attempt == RATE_LIMIT_TRIES - 1 or self._stop.is_set():
                    raise
                was = self._calls.total_tokens
                if asked > self._lowered_at:  # one halving per burst: calls already in flight then say nothing new
                    self._calls.total_tokens = max(1, was // 2)
                    self._lowered_at = time.monotonic()
                self.status.calls_limit = self._calls.total_tokens
                self._good_calls = 0
                delay = exc.retry_after or min(60.0, 2.0 ** attempt)
                if self.config.max_wall_s is not None:
                    left = self.config.max_wall_s - (time.monotonic() - self._started)
                    if delay >= left:  # the wall-time budget ends before the endpoint takes calls again
                        raise
                await self.ws.archive.add_event(self.run_id, "rate_limited", {
                    "arm": arm, "retry_in_s": delay, "calls_in_flight_limit": self._calls.total_tokens,
                    "was": was})
                with anyio.move_on_after(delay):
                    await self._stop.wait()
                if self._stop.is_set():
                    raise
        raise AssertionError("unreachable")

    async def _call(self, arm: str, prompt: str, purpose: str) -> tuple[Reply, int] | None:
        reservation = self._reserve(arm, prompt)
        if reservation is None:
            return None
        try:
            async with self._calls:
                reply = await self.ensemble.complete(arm, SYSTEM_PROMPT, prompt, self.ws.rng, self.run_id, purpose)
        except ModelError as exc:
            self._model_failed(arm, exc)
            raise
        finally:
            self._reserved -= reservation
        self._good_calls += 1
        if self._good_calls >= RAISE_AFTER and self._calls.total_tokens < self.config.concurrency:
            self._calls.total_tokens += 1
            self.status.calls_limit = self._calls.total_tokens if self._calls.total_tokens < self.config.concurrency \
                else None
            self._good_calls = 0
        self._model_failures[arm] = 0
        self._model_unreachable.pop(arm, None)
        self.status.failing_models.pop(arm, None)
        self._spent += reply.cost_usd
        assert reply.call_id is not None
        return reply, reply.call_id

    def _model_failed(self, arm: str, exc: ModelError) -> None:
        """Count a failed call; the model is failing (shown at once) until its next good call."""
        self._model_unreachable[arm] = self._model_unreachable.get(arm, True) and exc.unreachable
        self._model_failures[arm] = self._model_failures.get(arm, 0) + 1
        if arm not in self.status.failing_models:
            log.info("run %d: model %s failed: %s", self.run_id, arm, exc)
        self.status.failing_models[arm] = str(exc)[:500]

    async def _propose_reply(self, arm: str, sampled: Any, reply: Reply, call_id: int) -> ProposalResult:
        if not reply.text.strip():
            raise ModelError(f"model {arm!r} sent an empty reply")
        try:
            patch, code, description = patches.parse_reply(reply.text)
        except patches.UnusableReply as exc:
            raise ModelError(str(exc)) from None
        result = await steps.propose_candidate(
            self.ws, self.run_id, sampled.parent.id, patch=patch, code=code, patch_type=sampled.patch_type,
            description=description or None, ticket=sampled.ticket, operator=arm, cost_usd=reply.cost_usd,
            detach=True)
        await self.ws.archive.link_llm_call(call_id, result.program.id)
        return result

    # meta-recommendations ------------------------------------------------------

    async def _maybe_meta(self) -> None:
        every = self.config.meta_every
        if not every or not self.config.models:
            return
        evaluated = await self._evaluated()
        if evaluated - self._last_meta < every:
            return
        self._last_meta = evaluated
        model = min(self.config.models, key=lambda m: (m.price_out_per_m or 0.0))
        recent = await self.ws.archive.recent_programs(self.run_id, 2 * every)
        rows = "\n".join(
            f"- score {r['combined_score']!r} correct={r['correct']} change={r['description']!r} "
            f"error={(r['error'] or '')[:200]!r}" for r in recent)
        state = await self.ws.state(self.run_id)
        best = await state.best_score()
        prompt = META_PROMPT.format(task=state.task().description[:1500], best=repr(best) if best is not None
                                    else None, rows=rows)
        try:
            call = await self._complete(model.name, prompt, "meta")
        except ModelError:  # recorded; the next round tries again
            return
        if call is None:  # over the cost cap
            return
        reply, _ = call
        lines = reply.text.strip().splitlines()
        recommendations = "\n".join(line for line in lines if line.lstrip().startswith("- "))[:3000]
        note = run_notes.MetaNote(at=evaluated, scratchpad=reply.text[:6000], recommendations=recommendations)
        await (await self.ws.state(self.run_id)).set_meta(note)


class Drivers:
    """The drivers of a server process, each a task in the server's task group."""

    def __init__(self, ws: Workspace, task_group: TaskGroup):
        self.ws = ws
        self._tg = task_group
        self.active: dict[int, Driver] = {}

    async def start(self, run_id: int, config: DriverConfig, resume: bool = False) -> Driver:
        if run_id in self.active and not self.active[run_id].done.is_set():
            raise EvoError(f"run {run_id} is already driven; stop_run first to change its driver")
        try:
            driver = Driver(self.ws, run_id, config, resume=resume)
        except ModelError as exc:
            raise EvoError(str(exc)) from None
        if not resume:
            await self.ws.archive.set_note(run_id, run_notes.DRIVER, driver.status.model_dump(mode="json"))
        self.active[run_id] = driver
        self._tg.start_soon(self._run, driver)
        return driver

    async def _run(self, driver: Driver) -> None:
        try:
            await driver.run()
        except Exception as exc:  # noqa: BLE001 - a broken driver must not take the server down
            log.exception("driver of run %d failed", driver.run_id)
            driver.status.state = "failed"
            driver.status.reason = f"{type(exc).__name__}: {exc}"
            try:
                await self.ws.archive.set_note(driver.run_id, run_notes.DRIVER, driver.status.model_dump(mode="json"))
            except StorageError as again:
                log.error("run %d: %s", driver.run_id, again)
            driver.done.set()

    async def stop(self, run_id: int, timeout_s: float = 30.0) -> None:
        driver = self.active.get(run_id)
        if driver is None:
            return
        driver.stop()
        with anyio.move_on_after(timeout_s):
            await driver.done.wait()


async def resume_driven_runs(ws: Workspace, drivers: Drivers) -> list[int]:
    """Restart the drivers of runs that were being driven when the last server process ended."""
    resumed = []
    for run in await ws.archive.list_runs():
        note = await ws.archive.get_note(run.id, run_notes.DRIVER)
        if run.status in ("running", "interrupted") and note and note.get("state") in ("running", "interrupted",
                                                                                       "stopping"):
            if run.status == "interrupted":
                await ws.archive.set_run_status(run.id, "running")
                await ws.archive.add_event(run.id, "run_resumed", {"was": "interrupted"})
            await drivers.start(run.id, DriverConfig.model_validate(note["config"]), resume=True)
            resumed.append(run.id)
    return resumed
