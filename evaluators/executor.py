"""Executors: run candidates in sandboxed children, a bounded number at a time, and judge the outcomes.

`Executor` holds what every backend shares (slots, the trusted scorer, verdicts from child
outcomes); `LocalExecutor` runs the children on this machine. The Ray and Dask backends
(evaluators/remote.py) run the same children on cluster workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import anyio

from .sandbox import SECRET_PATHS, ChildOutcome, ForkServer, ForkServerError, Limits, parse_left_json, run_job
from .child import DEFAULT_PROCESSES
from .languages import build_spec, check_spec
from .scorer import Scorer
from .task import SCORE_FUNCTION, Task
from .task_imports import install_command
from ..results import EvaluationResult, Verdict


def _failure_reason(outcome: ChildOutcome, limits: Limits) -> str:
    reason = _first_reason(outcome, limits)
    last_words = next((line.strip() for line in reversed(outcome.stderr_tail.splitlines()) if line.strip()), "")
    if last_words and not outcome.timed_out:
        reason += f" (last line of stderr: {last_words[:300]})"
    if outcome.forks_refused:
        reason += f"; the program also hit the process limit ({outcome.forks_refused} forks refused)"
    elif outcome.processes_at_end >= (limits.processes or DEFAULT_PROCESSES) - 2:
        reason += (f"; the program also hit the process limit ({outcome.processes_at_end} processes were running "
                   f"when it was stopped)")
    return reason


def _first_reason(outcome: ChildOutcome, limits: Limits) -> str:
    if outcome.timed_out:
        return f"timeout: still running after {limits.timeout_s:g} s; the whole process group was killed"
    if outcome.result_error:
        return outcome.result_error
    if outcome.signal_name == "SIGXCPU":
        return "cpu limit: the program used more CPU seconds than allowed"
    if outcome.signal_name == "SIGXFSZ":
        return "file size limit: the program wrote a file larger than allowed"
    if outcome.signal_name == "SIGSEGV":
        return "crash: the program died with a segmentation fault (SIGSEGV)"
    if outcome.signal_name:
        return f"crash: the program was killed by {outcome.signal_name}"
    return f"no result: the program exited with code {outcome.returncode} before returning a result"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def average_of_metrics(metrics: dict[str, Any], exclude: list[str] | tuple[str, ...] = ()) -> float:
    """OpenEvolve's fitness of metrics without combined_score: the mean of the numeric values (booleans
    count as 0 and 1, NaN does not count) of the metrics not named in `exclude` (its MAP-Elites feature
    dimensions); of all metrics only when every metric is a feature dimension; 0.0 without a number."""
    def mean(items: list[tuple[str, Any]]) -> float | None:
        values = [float(v) for _, v in items if isinstance(v, (int, float)) and not math.isnan(float(v))]
        return sum(values) / len(values) if values else None

    kept = [(k, v) for k, v in metrics.items() if k not in exclude]
    return (mean(kept) if kept else mean(list(metrics.items()))) or 0.0


def verdict_from_metrics(metrics: dict[str, Any], correct: Any = None, error: Any = None,
                         source: str = "evaluate()", average: tuple[str, ...] | None = None) -> Verdict:
    """Read the metrics dict of the evaluation contract (every shape); `source` names what returned it.
    `average`: without combined_score, score by OpenEvolve's rule, leaving out these feature dimensions."""
    if average is not None and "combined_score" not in metrics:
        metrics = {**metrics, "combined_score": average_of_metrics(metrics, average)}
    score = _number(metrics.get("combined_score"))
    if error is None:
        error = metrics.get("error")
    if correct is None:
        correct = metrics.get("correct", score is not None and not error)
    if score is None:
        reason = f"{source} returned no finite number under 'combined_score'"
        return Verdict(correct=False, error=str(error or reason), text_feedback=metrics.get("text_feedback"),
                       public_metrics=metrics.get("public") or {})
    public = metrics.get("public") if isinstance(metrics.get("public"), dict) else {}
    private = metrics.get("private") if isinstance(metrics.get("private"), dict) else {}
    extra = {k: v for k, v in metrics.items()
             if k not in {"combined_score", "correct", "public", "private", "text_feedback", "error"}}
    feedback = metrics.get("text_feedback")
    return Verdict(
        correct=bool(correct),
        combined_score=score,
        public_metrics={**extra, **public},
        private_metrics=private,
        text_feedback=None if feedback is None else str(feedback)[:8000],
        error=None if not error else str(error)[:4000],
    )


class SandboxError(RuntimeError):
    """The sandbox could not produce an outcome (not the candidate's fault); the message is the reason."""


def job_for(task: Task, code: str, limits: Limits) -> dict[str, Any]:
    """What a sandbox needs to evaluate `code` for `task`, as JSON-able data (see sandbox.run_job).

    Built-in and split-contract tasks run only the candidate's entry function, which returns data.
    """
    cascade = None if task.cascade_thresholds is None else {"thresholds": task.cascade_thresholds,
                                                             "stage_timeout_s": task.timeout_s}
    return {
        "cascade": cascade,
        "kind": task.job_kind,
        "entry": task.entry,
        "code": code,
        "suffix": task.file_suffix,
        "evaluate_name": Path(task.evaluate_path or "evaluate.py").name,
        "limits": dataclasses.asdict(limits),
        "build": build_spec(task),
    }


def check_job(task: Task, code: str, limits: Limits) -> dict[str, Any] | None:
    """A non-Python program's compile check (evaluators/languages.py), sandboxed like a candidate; None when
    the task has none."""
    build = check_spec(task)
    if build is None:
        return None
    return {"kind": "check", "code": code, "suffix": task.file_suffix, "limits": dataclasses.asdict(limits),
            "build": build}


def score_job(task: Task, value: Any, limits: Limits) -> dict[str, Any]:
    """A split-contract task's score(data) on the data a candidate returned: a child of its own with the
    task directory copied in and no candidate code (see sandbox.run_job)."""
    return {
        "kind": "score",
        "value": value,
        "evaluate_name": Path(task.evaluate_path or "evaluate.py").name,
        "score_name": SCORE_FUNCTION,
        "limits": dataclasses.asdict(limits),
    }


PROBE_JOB: dict[str, Any] = {"kind": "probe", "limits": {"timeout_s": 30}}


class Executor(ABC):
    """What every executor backend shares: slots, the trusted scorer, and verdicts from child outcomes.

    A backend implements `_run(job, task)`: run the job's child in the sandbox somewhere (here, or on
    a cluster worker) and return its ChildOutcome, or raise SandboxError with the reason. Built-in
    tasks are always scored here, by the trusted scorer process: the child only returns data.
    Split-contract tasks are scored by a second job (`score_job`): the task's score(data) in a fresh
    child that never loads the candidate's code.
    """

    backend = "local"

    def __init__(self, slots: int | None = None, isolate: bool = True):
        self.slots = slots or os.cpu_count() or 1
        self.isolate = isolate
        self._scorer = Scorer()
        self._limiter = anyio.CapacityLimiter(self.slots)
        self.in_flight = 0
        self._isolation: str | None = None

    def _set_slots(self, slots: int) -> None:
        self.slots = max(1, int(slots))
        self._limiter.total_tokens = self.slots

    @abstractmethod
    def hide(self, *paths: str) -> None:
        """Files and folders that candidates must not see (the archive, for one)."""

    @abstractmethod
    async def _run(self, job: dict[str, Any], task: Task | None) -> ChildOutcome:
        """Run one sandbox job where this backend runs them and return the child's outcome."""

    async def aclose(self) -> None:
        await self._scorer.aclose()

    @property
    def helper_pids(self) -> set[int]:
        """Pids of the long-lived local helpers (the trusted scorer; locally also the warm template)."""
        return set() if self._scorer.pid is None else {self._scorer.pid}

    @property
    def template_pid(self) -> int | None:
        """Pid of the local warm template process, while it runs (None where children run elsewhere)."""
        return None

    @property
    def scorer_pid(self) -> int | None:
        """Pid of the trusted scorer process, while it runs."""
        return self._scorer.pid

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def isolation(self) -> str:
        """The isolation level children get: `namespaces`, `bwrap` or `none` (see sandbox.py), plus `+pids-cgroup`."""
        if self._isolation is None:
            self._isolation = (await self._run(PROBE_JOB, None)).isolation
        return self._isolation

    def limits_for(self, task: Task) -> Limits:
        """A cascade's stages each get the task's time limit (as in OpenEvolve); the evaluation all of them."""
        stages = task.cascade_stages if task.cascade_thresholds is not None else 1
        return Limits(timeout_s=task.timeout_s * stages, address_space_bytes=task.memory_mb * 1024**2)

    async def evaluate(self, task: Task, code: str, slot: bool = True) -> EvaluationResult:
        """Evaluate a program in one of the slots (`slot=False`: beside them, for the server's own probes)."""
        if not slot:
            return await self._evaluate(task, code)
        async with self._limiter:
            self.in_flight += 1
            try:
                return await self._evaluate(task, code)
            finally:
                self.in_flight -= 1

    async def _evaluate(self, task: Task, code: str) -> EvaluationResult:
        started = time.monotonic()
        limits = self.limits_for(task)
        try:
            outcome = await self._run(job_for(task, code, limits), task)
        except SandboxError as exc:
            return EvaluationResult(correct=False, status="failed", eval_seconds=time.monotonic() - started,
                                    error=str(exc))
        verdict, failed = await self._judge(task, outcome, limits)
        return EvaluationResult(
            **verdict.model_dump(),
            status="failed" if failed else "evaluated",
            stdout_tail=outcome.stdout_tail or None,
            stderr_tail=outcome.stderr_tail or None,
            eval_seconds=time.monotonic() - started,
            isolation=self._isolation or outcome.isolation,  # the probe's word: a result file is the candidate's
        )

    async def _judge(self, task: Task, outcome: ChildOutcome, limits: Limits) -> tuple[Verdict, bool]:
        """The verdict, and whether the run failed (no usable result) rather than scored."""
        if task.kind == "script":
            if outcome.timed_out:
                return Verdict(correct=False, error=_failure_reason(outcome, limits)), True
            verdict = _read_script_results(outcome, limits, Path(task.evaluate_path or "evaluate.py").name)
            return verdict, verdict.combined_score is None
        result = outcome.result
        if result is None:
            return Verdict(correct=False, error=_failure_reason(outcome, limits)), True
        if not result.get("ok"):
            error = explain_missing_module(str(result.get("error", "the program failed")))
            return Verdict(correct=False, error=error, text_feedback=result.get("traceback")), True
        if task.kind == "builtin":
            return await self._scorer.score(task.name, result.get("value")), False
        if task.kind == "split":
            return await self._score_split(task, result.get("value"), limits)
        value = result.get("value")
        source = f"evaluate() of {Path(task.evaluate_path or 'evaluate.py').name}"
        average = tuple(task.feature_dimensions) if task.fitness == "average" else None
        verdict = verdict_from_metrics(value if isinstance(value, dict) else {}, source=source, average=average)
        return verdict, verdict.combined_score is None

    async def check_program(self, task: Task, code: str) -> str | None:
        """Why a non-Python program cannot be evaluated (the compiler's first errors, or its check running past
        the task's limits), or None when it passes its compile check or the task has none."""
        limits = self.limits_for(task)
        job = check_job(task, code, limits)
        if job is None:
            return None
        try:
            async with self._limiter:
                outcome = await self._run(job, task)
        except SandboxError as exc:
            return f"the compile check could not run: {exc}"
        if outcome.timed_out:
            return (f"the compile check ran past the task's time limit of {limits.timeout_s:g} s and was stopped "
                    f"with every process it started (a template or constexpr recursion without end, say)")
        result = outcome.result
        if result is None:
            return f"the compile check gave no result: {_failure_reason(outcome, limits)}"
        if not result.get("ok"):
            return str(result.get("error") or "the compile check failed")
        return None

    async def _score_split(self, task: Task, value: Any, limits: Limits) -> tuple[Verdict, bool]:
        """Run the task's score(data) on what the candidate returned, in a child of its own."""
        source = f"{SCORE_FUNCTION}() of {Path(task.evaluate_path or 'evaluate.py').name}"
        try:  # the data travels as JSON; what cannot (nested too deeply, say) is the candidate's failure
            json.dumps(value)
        except (ValueError, TypeError, RecursionError) as exc:
            return Verdict(correct=False, error=f"the program returned data that cannot be passed to {source}: "
                                                f"{str(exc)[:300]}"), True
        try:
            outcome = await self._run(score_job(task, value, limits), task)
        except SandboxError as exc:
            return Verdict(correct=False, error=f"{source}: {exc}"), True
        result = outcome.result
        if result is None:
            return Verdict(correct=False, error=f"{source} gave no result: {_failure_reason(outcome, limits)}"), True
        if not result.get("ok"):
            return Verdict(correct=False, error=f"{source} failed on the program's data: "
                                                f"{result.get('error', 'no reason given')}",
                           text_feedback=result.get("traceback")), True
        metrics = result.get("value")
        verdict = verdict_from_metrics(metrics if isinstance(metrics, dict) else {}, source=source)
        return verdict, verdict.combined_score is None


class ReadOnlyExecutor(Executor):
    """For commands that only read an archive (`evomcp show`, `runs`, `export`, `report`): no sandbox is
    started and nothing is evaluated; `isolation()` is None (the run's recorded level is what counts)."""

    backend = "none"

    def hide(self, *paths: str) -> None:
        pass

    async def isolation(self) -> str | None:  # type: ignore[override]
        return None

    async def _run(self, job: dict[str, Any], task: Task | None) -> ChildOutcome:
        raise SandboxError("this command only reads the archive and evaluates nothing; use `evomcp run` or "
                           "`evomcp serve` to evaluate")


class LocalExecutor(Executor):
    """Evaluates candidates in fresh sandboxed children forked from a warm template process.

    `hide` lists files and folders (the archive, for one) that candidates must not see;
    the usual secret folders of the user's home are always hidden.
    """

    def __init__(self, slots: int | None = None, isolate: bool = True, hide: tuple[str, ...] = (),
                 preload: tuple[str, ...] = ("numpy",)):
        super().__init__(slots, isolate)
        home = Path.home()
        self._fork = ForkServer(preload=preload, isolate=isolate,
                                hide=(*hide, *(str(home / p) for p in SECRET_PATHS)), spares=self.slots)

    def hide(self, *paths: str) -> None:
        self._fork.hide.extend(p for p in paths if p not in self._fork.hide)

    async def aclose(self) -> None:
        await self._fork.aclose()
        await super().aclose()

    @property
    def helper_pids(self) -> set[int]:
        """Pids of the long-lived helpers: the warm template and the trusted scorer."""
        return self._fork.pids | super().helper_pids

    @property
    def template_pid(self) -> int | None:
        """Pid of the warm template process, while it runs."""
        return self._fork.pid

    async def _run(self, job: dict[str, Any], task: Task | None) -> ChildOutcome:
        task_dir = Path(task.source) if task is not None and task.has_folder else None
        try:
            return await run_job(self._fork, job, task_dir)
        except ForkServerError as exc:
            raise SandboxError(f"sandbox failure: {exc}; the template process is restarted on the next "
                               f"evaluation, so evaluating this program again may work") from None


_NO_MODULE = re.compile(r"No module named '([A-Za-z_][\w.]*)'")


def explain_missing_module(error: str) -> str:
    """An error naming a module that is not installed, with the command that installs it."""
    match = _NO_MODULE.search(error)
    if match is None or "pip install" in error:
        return error
    top = match.group(1).split(".")[0]
    return (f"{error} ({top} is not installed where candidates run: install it with {install_command(top)}; "
            f"a module of the task folder must sit beside the evaluator)")


def _read_script_results(outcome: ChildOutcome, limits: Limits, script: str = "evaluate.py") -> Verdict:
    files = outcome.files
    if "metrics.json" not in files:
        raised = outcome.result if isinstance(outcome.result, dict) and outcome.result.get("error") else None
        if raised is not None:  # the script let an exception out: the bootstrap wrote what it was
            return Verdict(correct=False, error=f"{script} failed: {explain_missing_module(str(raised['error']))}",
                           text_feedback=str(raised.get("traceback") or "")[-4000:] or None)
        if outcome.returncode not in (0, None) or outcome.signal_name:
            return Verdict(correct=False, error=_failure_reason(outcome, limits))
        return Verdict(correct=False, error=f"{script} wrote no metrics.json to --results_dir")
    for name in ("metrics.json", "correct.json"):
        if name in files and files[name] is None:
            return Verdict(correct=False, error=f"{script} wrote a {name} larger than {limits.result_max_bytes} "
                                                f"bytes, or not as a regular file")
    metrics, error = parse_left_json((files["metrics.json"] or "").encode(), "metrics.json")
    correct_doc = {}
    if error is None and "correct.json" in files:
        correct_doc, error = parse_left_json((files["correct.json"] or "").encode(), "correct.json")
    if error is not None:
        return Verdict(correct=False, error=f"{script} wrote bad results: {error}")
    if not isinstance(metrics, dict):
        return Verdict(correct=False, error="metrics.json does not hold a JSON object")
    correct = correct_doc.get("correct") if isinstance(correct_doc, dict) else None
    error = correct_doc.get("error") if isinstance(correct_doc, dict) else None
    return verdict_from_metrics(metrics, correct=correct, error=error, source=f"metrics.json of {script}")
