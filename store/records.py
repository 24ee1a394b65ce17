"""Plain records the archive reads and writes (no behaviour, no I/O)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ..results import EvaluationResult  # noqa: F401 - what save_result writes, re-exported

RunStatus = Literal["running", "stopped", "interrupted", "finished", "failed"]
ProgramStatus = Literal["pending", "running", "evaluated", "failed"]


class RunRecord(BaseModel):
    id: int
    name: str
    task: str
    task_path: str
    config: dict[str, Any]
    status: RunStatus
    target_score: float | None
    created_at: float
    updated_at: float
    status_reason: str | None = None


class ProgramRecord(BaseModel):
    id: int
    run_id: int
    parent_id: int | None
    island: int
    generation: int
    code: str
    code_hash: str
    diff: str | None
    patch_type: str
    description: str | None
    status: ProgramStatus
    correct: bool | None
    combined_score: float | None
    public_metrics: dict[str, Any]
    private_metrics: dict[str, Any]
    text_feedback: str | None
    error: str | None
    stdout_tail: str | None
    stderr_tail: str | None
    eval_seconds: float | None
    cost_usd: float
    created_at: float
    evaluated_at: float | None
    fingerprint: str | None = None  # of the canonical form; None for programs stored before fingerprints
    operator: str | None = None  # the model or offline operator its proposal named; None: the seed, or an agent
