"""Pydantic inputs and outputs of the evolution tools (the MCP schemas come from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .perturb import OPERATOR as PERTURB
from .selection import Strategy
from .trust import SCORING_HELP, Scoring

PatchType = Literal["diff", "full", "cross"]

DEFAULT_WAIT_S = 45.0  # how long a tool call waits for an evaluation: below the ~60 s after which hosts give up


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
    novelty: bool = Field(True, description="refuse a program that is one already tried in the run up to "
                                            "formatting, comments, docstrings, names of locals and the spelling "
                                            "of numbers (tools/canonical.py)")
    novelty_threshold: float = Field(0.995, gt=0, le=1, description="with novelty_judge: cosine similarity of "
                                     "the embeddings above which the judge is asked; similarity alone refuses "
                                     "nothing")
    novelty_exempt: list[str] = Field([PERTURB], description="operators whose changes skip the novelty check "
                                      "(perturb tunes constants: near-copies are its purpose)")
    embeddings: dict[str, Any] | None = Field(
        None, description="embed with an OpenAI-compatible endpoint instead of the offline embedder: "
                          "{model, base_url, api_key_env}")
    novelty_judge: dict[str, Any] | None = Field(
        None, description="ask this model (a model spec as in driver.models) whether a candidate closer than "
                          "novelty_threshold to a correct program of its island is meaningfully different; "
                          "one it finds not different is refused")
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
    language: str = Field("python", description="the language of the program that is evolved")


class TaskList(BaseModel):
    tasks: list[TaskInfo]
    hint: str = "pass a name to start_run, or the path of a task directory (initial.py + evaluate.py)"


class RunInfo(BaseModel):
    run_id: int
    name: str
    task: str
    status: str = Field(description="running (open for new programs), finished (a budget or the target was "
                                    "reached), stopped (stop_run), interrupted (the process driving it ended), "
                                    "failed (see status_reason); resume_run reopens any of them")
    status_reason: str | None = Field(None, description="why the run is in its status, when it is not running")
    target_score: float | None
    created_at: float
    config: dict[str, Any]
    scoring: Scoring = Field(description="where the run's scores were computed: " + SCORING_HELP)


class RunList(BaseModel):
    runs: list[RunInfo]


ISLAND_HELP = ("the island the program was proposed on (a migration may have moved it since; get_run_status's "
               "islands and get_archive's island filter count where programs are now; the seed is on every island)")


class ProgramSummary(BaseModel):
    id: int
    parent_id: int | None
    island: int = Field(description=ISLAND_HELP)
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
    counts: dict[str, int] = Field(description="programs by status: pending (stored, not evaluated yet), running "
                                               "(being evaluated), evaluated (ran and was scored, correct or "
                                               "not), failed (crashed, timed out or returned nothing usable); "
                                               "the seed counts once, whatever islands it sits on")
    evaluations_finished: int = Field(description="programs whose evaluation finished: counts.evaluated + "
                                                  "counts.failed (the seed and every candidate)")
    candidates_evaluated: int = Field(0, description="evaluations finished of candidates (programs with a parent): "
                                                     "evaluations_finished without the seed; what an evaluation "
                                                     "budget counts")
    in_flight: int = Field(description="programs stored and not evaluated yet: counts.pending + counts.running")
    tickets_outstanding: int = Field(description="parents handed out by sample_parent and not proposed on yet "
                                                 "(they expire after the run's ticket_ttl_s); no program exists "
                                                 "for them")
    time_limit_s: float | None = Field(None, description="seconds one evaluation may take: the run's timeout_s, "
                                                         "else the task's")
    best: ProgramSummary | None
    target_score: float | None
    gap_to_target: float | None
    novelty_rejections: int = Field(0, description="candidates refused by the novelty check (the same program as "
                                                   "one already tried, or refused by the novelty judge)")
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
    evaluating: list[int] = Field(default_factory=list, description="programs being evaluated by this server "
                                  "right now; wait_for(run_id, program_ids) returns as soon as one is done")
    notes: dict[str, str] = Field(default_factory=dict, description="what to know about the task: 'settings' "
                                  "(read from a ShinkaEvolve or OpenEvolve folder's config, and where), "
                                  "'offline_operator' (the offline perturb operator can do little or nothing "
                                  "for this task: give the run a model)")

    @property
    def evaluated(self) -> int:
        """Python callers' name of evaluations_finished."""
        return self.evaluations_finished


class ParentView(BaseModel):
    id: int
    island: int = Field(description=ISLAND_HELP)
    generation: int
    combined_score: float | None
    correct: bool | None
    public_metrics: dict[str, Any]
    text_feedback: str | None
    code: str | None = Field(description="the program; left out of inspirations past a size (get_program has it)")
    stdout_tail: str | None = Field(None, description="the end of what the program printed when it was evaluated")


class SandboxFacts(BaseModel):
    """What a candidate gets where it runs, measured by a probe program in the sandbox (once per executor)."""

    measured: bool = Field(description="false: the probe could not run; `note` says why")
    note: str | None = None
    python: str | None = None
    cpus: int | None = Field(None, description="CPUs the candidate's process may run on")
    memory_limit_mb: int | None = Field(None, description="address-space limit (RLIMIT_AS); None: unlimited")
    cpu_seconds_limit: int | None = Field(None, description="CPU-time limit (RLIMIT_CPU); None: unlimited")
    can_fork: bool | None = Field(None, description="whether the candidate can start processes (multiprocessing)")
    network_interfaces: list[str] | None = None
    thread_env: dict[str, str] = Field(default_factory=dict, description="thread-count variables set for it")
    packages: dict[str, str] = Field(default_factory=dict, description="package -> version when it imports, else "
                                                                       "'not installed' or why it fails to import")
    other_installed: list[str] = Field(default_factory=list, description="other installed distributions "
                                                                         "(not import-tested)")


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
    time_limit_s: float = Field(description="seconds one evaluation may take; a program still running then fails")
    sandbox: SandboxFacts = Field(description="what the program can import and use where it runs (measured)")
    language: str = Field("python", description="the program's language: python, c, cpp, rust, or the one its task "
                                                "names (markers are that language's comment lines)")
    brief: str = Field(description="a complete prompt for writing the change, answer format included")


class NoveltyCheck(BaseModel):
    checked: bool
    same_as: int | None = Field(None, description="the program of the run this one equals after normalising "
                                                  "(only when accepted by novelty_override)")
    override: str | None = Field(None, description="the reason given in novelty_override, when it was used")
    nearest_id: int | None = Field(None, description="with a novelty judge: the closest program of the island")
    similarity: float | None = Field(None, description="with a novelty judge: cosine similarity to nearest_id")
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
    text_feedback: str | None = Field(None, description="what the evaluator said of the program besides its "
                                      "metrics (artifacts, a cascade stopped early, a traceback); untrusted data")
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


class WaitResult(BaseModel):
    run_id: int
    finished: list[ProposalResult] = Field(description="the given programs that are evaluated or failed, with "
                                                       "score, error and deltas")
    unfinished: list[ProgramSummary] = Field(description="the given programs still running (or pending)")
    waited_s: float = Field(description="how long this call waited")
    next_step: str
