"""The result of evaluating one program: one model from the scorer's verdict to the archive's row.

`Verdict` is what a trusted scorer or a task's evaluator says of a program; `EvaluationResult` adds
what the sandbox saw while producing it. The executor makes it (evaluators/), the run's state writes
it (tools/run_state.py, store/), and a program's record holds the same fields under the same names.
It lives below both evaluators/ and store/, which import nothing of each other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Verdict(BaseModel):
    correct: bool
    combined_score: float | None = None
    public_metrics: dict[str, Any] = {}
    private_metrics: dict[str, Any] = {}
    text_feedback: str | None = None
    error: str | None = None

    @classmethod
    def invalid(cls, reason: str) -> Verdict:
        return cls(correct=False, combined_score=None, error=f"invalid: {reason}", text_feedback=reason)


class EvaluationResult(Verdict):
    """A verdict and how it was reached: `failed` when the evaluation produced no usable result."""

    status: Literal["evaluated", "failed"] = "evaluated"
    stdout_tail: str | None = None
    stderr_tail: str | None = None
    eval_seconds: float | None = None
    isolation: str = "none"  # the sandbox's level; recorded with the run's `evaluated` event, not on the program

    @property
    def failed(self) -> bool:
        return self.status == "failed"
