"""Pydantic inputs and outputs of the evolution tools (the MCP schemas come from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .selection import Strategy
from .trust import SCORING_HELP, Scoring

PatchType = Literal["diff", "full", "cross"]


class RunConfig(BaseModel):
    """Per-run settings; every field has a sensible default."""

    selection: Strategy = Field(
        "weighted", description="parent selection: uniform, power_law, weighted, hill_climbing, beam or best_of_n")
    power_law_alpha: float = Field(1.0, ge=0, le=50, description="power_law: p ~ rank^-alpha")
    weighted_lambda: float = Field(10.0, gt=0, le=1000, description="weighted: sigmoid sharpness")
    beam_width: int = Field(4, ge=1, le=1000, description="beam: children per program before moving on")
    num_islands: int = Field(2, ge=1, le=32, description="islands evolving apart; the seed starts on each")
    migration_interval: int = Field(25, ge=0, description="evaluations between migrations (0: never)")
    migration_rate: float = Field(0.1, gt=0, le=0.5, description="share of each island's best that migrates")
    archive_size: int = Field(40, ge=1, le=10000, description="elite programs inspirations are drawn from")
    num_inspirations: int = Field(2, ge=0, le=8, description="other good programs shown in each brief")
    novelty: bool = Field(True, description="refuse near-copies of programs of the same island")
    novelty_threshold: float = Field(0.995, gt=0, le=1, description="cosine similarity above which a "
                                     "candidate counts as a near-copy")
    novelty_exempt: list[str] = Field(["perturb"], description="operators whose changes skip the novelty check "
                                      "(perturb tunes constants: near-copies are its purpose)")
    embeddings: dict[str, Any] | None = Field(
        None, description="embed with an OpenAI-compatible endpoint instead of the offline embedder: "
                          "{model, base_url, api_key_env}")
    novelty_judge: dict[str, Any] | None = Field(
        None, description="ask this model (a model spec as in driver.models) whether a near-copy is still "
                          "meaningfully different; it may accept what the threshold would refuse")
    patch_mix: dict[PatchType, float] = Field({"diff": 0.6, "full": 0.3, "cross": 0.1},
                                              description="how often each patch type is suggested")
    max_code_bytes: int = Field(256 * 1024, ge=1024, le=4 * 1024 * 1024, description="largest program accepted")
    timeout_s: float | None = Field(None, gt=0, le=3600, description="evaluation timeout; default: the task's")
    ticket_ttl_s: float = Field(900, gt=0, description="a sampled parent counts as in flight this long")
    seed: int | None = Field(None, description="random seed of parent selection")
    require_isolation: Literal["none", "bwrap", "namespaces"] = Field(
        "none", description="refuse to start unless candidates get at least this isolation level: 'namespaces' "
                            "(a sandbox per candidate) > 'bwrap' (one bubblewrap sandbox shared by the "
                            "candidates running at once) > 'none'")


class TaskInfo(BaseModel):
    name: str
    summary: str
    target_score: float | None
    kind: str


class TaskList(BaseModel):
    tasks: list[TaskInfo]
    hint: str = "pass a name to start_run, or the path of a task directory (initial.py + evaluate.py)"


class RunInfo(BaseModel):
    run_id: int
    name: str
    task: str
    status: str
    target_score: float | None
    created_at: float
    config: dict[str, Any]
    scoring: Scoring = Field(description="where the run's scores were computed: " + SCORING_HELP)


class RunList(BaseModel):
    runs: list[RunInfo]


class ProgramSummary(BaseModel):
    id: int
    parent_id: int | None
    island: int
    generation: int
    status: str = Field(description="pending, running, evaluated or failed")
    correct: bool | None
    combined_score: float | None = Field(description="higher is better; full precision")
    patch_type: str
    description: str | None
    error: str | None
    public_metrics: dict[str, Any]
    eval_seconds: float | None
    created_at: float
    evaluated_at: float | None


class ProgramDetail(ProgramSummary):
    run_id: int
    code: str
    diff: str | None
    text_feedback: str | None
    stdout_tail: str | None
    stderr_tail: str | None
    resource_uri: str


class IslandStatus(BaseModel):
    programs: int
    correct: int
    best_score: float | None
    best_id: int | None


class RunStatus(BaseModel):
    run: RunInfo
    counts: dict[str, int] = Field(description="programs by status")
    evaluated: int
    in_flight: int = Field(description="programs being evaluated plus sampled parents not yet used")
    best: ProgramSummary | None
    target_score: float | None
    gap_to_target: float | None
    novelty_rejections: int = Field(0, description="candidates refused as near-copies")
    cost_usd: float = Field(0.0, description="spent on model calls so far")
    models: dict[str, dict[str, Any]] = Field(default_factory=dict, description="model calls per model")
    driver: dict[str, Any] | None = Field(None, description="the built-in driver: state, budgets, bandit arms")
    islands: dict[int, IslandStatus] = Field(default_factory=dict)
    scoring: Scoring = Field(description=SCORING_HELP)
    scoring_detail: str = Field(description="how the run's scores were computed, contract by contract")
    isolation: str = Field(description="what candidates get here: 'namespaces' (no network, no view of other "
                                       "processes or of the archive), 'bwrap' (the same from one bubblewrap "
                                       "sandbox shared by the candidates running at once) or 'none' (rlimits "
                                       "and a session only), plus '+pids-cgroup' where the number of "
                                       "processes is capped")


class ParentView(BaseModel):
    id: int
    island: int
    generation: int
    combined_score: float | None
    correct: bool | None
    public_metrics: dict[str, Any]
    text_feedback: str | None
    code: str


class SampledParent(BaseModel):
    run_id: int
    ticket: str = Field(description="pass back to propose_candidate so in-flight counts stay right")
    strategy: str
    island: int
    mode: Literal["improve", "fix"] = Field(description="fix: the island has no correct program yet; repair this one")
    patch_type: PatchType = Field(description="the kind of change the brief asks for")
    parent: ParentView
    inspirations: list[ParentView]
    best_score: float | None
    brief: str = Field(description="a complete prompt for writing the change, answer format included")


class NoveltyCheck(BaseModel):
    checked: bool
    nearest_id: int | None = None
    similarity: float | None = None
    note: str | None = None


class ProposalResult(BaseModel):
    run_id: int
    program: ProgramSummary
    novelty: NoveltyCheck | None = None
    parent_score: float | None
    best_score_before: float | None
    delta_to_parent: float | None
    delta_to_best: float | None
    is_new_best: bool
    notes: list[str] = []
    next_step: str


class ArchivePage(BaseModel):
    run_id: int
    programs: list[ProgramSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


class Lineage(BaseModel):
    run_id: int
    program_id: int
    chain: list[ProgramSummary] = Field(description="oldest ancestor first, the program last")
