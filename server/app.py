"""The MCP adapter: each tool is a thin wrapper over a function of evomcp.tools.

The workspace (archive, executor) is opened by the caller and outlives every MCP
session, so stdio, streamable HTTP and in-memory clients all share one archive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Image
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from .. import __version__
from ..tools import history, runs, steps, views, waiting
from ..store import StorageError
from ..tools.errors import EvoError, one_line
from ..tools.models import (
    DEFAULT_WAIT_S,
    ArchivePage,
    Lineage,
    ProgramDetail,
    ProposalResult,
    RunList,
    RunStatus,
    SampledParent,
    TaskList,
    WaitResult,
)
from ..tools.selection import Strategy
from ..tools.workspace import Workspace
from .auth import StaticTokenVerifier, auth_settings
from ..tools import run_notes
from .driver import DriverConfig, DriverStatus, Drivers
from .report import render_progress_png

T = TypeVar("T")

INSTRUCTIONS = """\
evomcp evolves a program against an evaluator that scores it (higher combined_score is better).
Loop: start_run(task) once -> sample_parent(run_id) -> write a change following the returned brief ->
propose_candidate(run_id, parent_id, patch or code, ticket) -> read score and error -> repeat.
Only code between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END may change. get_run_status, get_archive,
get_program and get_lineage read the run; program code is also a resource evomcp://runs/{run_id}/programs/{id}.
No call waits longer than wait_s (45 s by default): an evaluation still running then is returned with status
`running` and goes on by itself; wait_for(run_id, program_ids) returns as soon as one of them is done.
"""

EVOLVE_PROMPT = """\
Evolve a better program for the task {task!r} with the evomcp tools, for about {steps} steps.
1. start_run(task={task!r}) once (or list_runs to continue one); note the run_id and the seed's score.
2. sample_parent(run_id): read the brief. It holds the task, the parent's code and full-precision score,
   inspirations and recent failures, and says which kind of change to make.
3. Write one change as the brief asks: SEARCH/REPLACE blocks (copy the SEARCH lines exactly) or the whole
   program. Change only code between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END.
4. propose_candidate(run_id, parent_id, patch or code, ticket, description): read the score, the error if
   any, and the deltas. A refusal (no match, duplicate, a bad ticket) explains what would pass; nothing is
   stored. A program that only reformats, re-comments or renames one already tried is a duplicate;
   novelty_override="<why>" stores it all the same.
   A call waits at most wait_s (45 s by default). If the task's evaluations take longer, the program comes
   back with status `running`: its evaluation goes on by itself and is recorded even if a call is cancelled.
   Call wait_for(run_id, program_ids=[id]) until it is done (it returns as soon as one of the given programs
   is), or propose a few more changes first and wait_for them together.
5. Repeat from 2. Use get_run_status or get_progress_plot to watch, get_program to read the best.
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

RunId = Annotated[int, Field(description="id of the run (from start_run or list_runs)", ge=1, le=2**63 - 1)]
ProgramId = Annotated[int, Field(description="id of a program of that run", ge=1, le=2**63 - 1)]
WaitS = Annotated[float, Field(
    description="the longest this call waits for an evaluation, in seconds (keep it below your host's tool-call "
                "timeout); an evaluation still running then goes on by itself: wait_for it", ge=0, le=3600)]


async def _call(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except (EvoError, StorageError) as exc:
        raise ToolError(str(exc)) from None


def _driver_config(driver: dict[str, Any]) -> DriverConfig:
    try:
        return DriverConfig.model_validate(driver)
    except ValidationError as exc:
        raise ToolError(f"bad driver settings: {one_line(exc)}") from None


def build_server(ws: Workspace, drivers: Drivers | None = None, *, token: str | None = None,
                 base_url: str = "http://127.0.0.1") -> MCPServer:
    """The MCP server over a workspace.

    `drivers` runs built-in drivers (None: agents only); `token` turns on bearer-token
    authentication of the HTTP transport (`base_url` is where the server is reached).
    """
    auth = {"token_verifier": StaticTokenVerifier(token), "auth": auth_settings(base_url)} if token else {}
    mcp = MCPServer("evomcp", version=__version__, instructions=INSTRUCTIONS,
                    description="LLM-driven program evolution: sample parents, propose changes, score them", **auth)

    def live(status: RunStatus) -> RunStatus:
        """The driver as this process sees it now (its note in the archive may lag, or be unwritable)."""
        driver = drivers.active.get(status.run.run_id) if drivers is not None else None
        if driver is not None:
            status.driver = driver.status.model_dump(mode="json")
        return status

    @mcp.tool(annotations=READ_ONLY)
    async def list_tasks() -> TaskList:
        """List the built-in benchmark tasks (name, what it asks, best known score).

        A run can also use any task directory: pass its path to start_run."""
        return await _call(runs.list_tasks(ws))

    @mcp.tool(annotations=WRITES)
    async def start_run(
        task: Annotated[str, Field(description="built-in task name (see list_tasks) or path of a task directory",
                                   max_length=4096)],
        name: Annotated[str | None, Field(description="a label for the run", max_length=200)] = None,
        config: Annotated[dict[str, Any] | None, Field(
            description="optional run settings: selection (uniform|power_law|weighted|hill_climbing|beam|"
                        "best_of_n), num_islands, migration_interval, novelty (bool), novelty_threshold, "
                        "num_inspirations, max_code_bytes, timeout_s, seed, require_isolation (none|bwrap|namespaces)")
        ] = None,
        driver: Annotated[dict[str, Any] | None, Field(
            description="let the server evolve the run by itself in the background: {models: [{name, model, "
                        "base_url, api_key_env, price_in_per_m, price_out_per_m}], perturb (bool, offline "
                        "operator), max_evaluations, max_cost_usd, max_wall_s, target_score, concurrency, "
                        "meta_every}; omit to drive the run yourself")] = None,
        wait_s: WaitS = DEFAULT_WAIT_S,
    ) -> RunStatus:
        """Start a run on a task: stores and evaluates the initial program (generation 0), returns the status.

        If the seed is still being evaluated after wait_s, its id is in `evaluating`: wait_for it.

        Then call sample_parent(run_id) to evolve it yourself, or pass `driver` to have the server evolve it in
        the background (watch it with get_run_status; both can work on one run at once)."""
        config_driver = _driver_config(driver) if driver is not None else None
        if config_driver is not None and drivers is None:
            raise ToolError("this server runs no built-in drivers; drive the run with sample_parent instead")

        async def start_driver(run_id: int) -> None:  # once the seed is evaluated, maybe after this call returned
            if config_driver is None or drivers is None:
                return
            run = await ws.run(run_id)
            if run.status != "running":  # the seed failed: the driver asked for never starts, and says why
                failed = DriverStatus(state="failed", reason=f"the run is {run.status}: {run.status_reason}",
                                      config=config_driver)
                await ws.archive.set_note(run_id, run_notes.DRIVER, failed.model_dump(mode="json"))
                return
            await drivers.start(run_id, config_driver)

        # the driver's settings are stored before the seed is evaluated: a server killed meanwhile resumes them
        notes = None if config_driver is None else {
            run_notes.DRIVER: DriverStatus(state="running", config=config_driver).model_dump(mode="json")}
        status = await _call(runs.start_run(ws, task, name, config, wait_s=wait_s, then=start_driver, notes=notes))
        return live(await _call(runs.get_run_status(ws, status.run.run_id))) if config_driver is not None else status

    @mcp.tool(annotations=WRITES)
    async def resume_run(
        run_id: RunId,
        driver: Annotated[dict[str, Any] | None, Field(
            description="driver settings as in start_run; omit to reuse the run's last driver settings, if any")
        ] = None,
    ) -> RunStatus:
        """Reopen a stopped or interrupted run; its built-in driver (if it had one) continues from the archive."""
        status = await _call(runs.resume_run(ws, run_id))
        settings = driver if driver is not None else (status.driver or {}).get("config")
        if settings is not None and drivers is not None:
            await _call(drivers.start(run_id, _driver_config(settings), resume=driver is None))
            status = await _call(runs.get_run_status(ws, run_id))
        return live(status)

    @mcp.tool(annotations=READ_ONLY)
    async def list_runs() -> RunList:
        """List every run in the archive with its status and task."""
        return await _call(runs.list_runs(ws))

    @mcp.tool(annotations=READ_ONLY)
    async def get_run_status(run_id: RunId) -> RunStatus:
        """Progress of a run: programs by status, work in flight, the best program and the gap to the target."""
        return live(await _call(runs.get_run_status(ws, run_id)))

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                          open_world_hint=False))
    async def stop_run(run_id: RunId) -> RunStatus:
        """Stop a run: its built-in driver stops (after the evaluations it has in flight, up to 30 s), evaluations
        still running are stopped and recorded as failed, new programs are refused; the archive is kept and
        resume_run reopens it."""
        if drivers is not None:
            await drivers.stop(run_id)
        return live(await _call(runs.stop_run(ws, run_id)))

    @mcp.tool(annotations=WRITES)
    async def sample_parent(
        run_id: RunId,
        strategy: Annotated[Strategy | None,
                            Field(description="override the run's parent selection for this call")] = None,
        island: Annotated[int | None, Field(
            description="sample on this island (0 to the run's num_islands - 1); default: the least busy one")] = None,
    ) -> SampledParent:
        """Pick a parent program to improve and get a ready-to-use brief for writing the change.

        The brief holds the task, the time limit, what the program can import and use where it runs (measured
        there), the parent's code, score and output, inspirations, the island's recent failures, the answer
        format and how to propose. Pass the returned ticket to propose_candidate with this parent."""
        return await _call(steps.sample_parent(ws, run_id, strategy, island=island, wait_s=DEFAULT_WAIT_S))

    @mcp.tool(annotations=WRITES)
    async def propose_candidate(
        ctx: Context,
        run_id: RunId,
        parent_id: ProgramId,
        patch: Annotated[str | None, Field(
            description="SEARCH/REPLACE blocks: '<<<<<<< SEARCH' old lines '=======' new lines '>>>>>>> REPLACE'"
        )] = None,
        code: Annotated[str | None, Field(description="the whole new program (instead of patch)")] = None,
        patch_type: Annotated[Literal["diff", "full"] | None,
                              Field(description="diff for patch, full for code; inferred when omitted")] = None,
        description: Annotated[str | None, Field(description="one line on the idea of the change",
                                                 max_length=2000)] = None,
        evaluate: Annotated[bool, Field(description="score it now (default) or leave it pending")] = True,
        ticket: Annotated[str | None, Field(description="the ticket sample_parent returned with this parent "
                                                        "(checked; optional)", max_length=64)] = None,
        wait_s: WaitS = DEFAULT_WAIT_S,
        novelty_override: Annotated[str | None, Field(
            description="store this program although the novelty check refuses it (the same program as one "
                        "already tried, after normalising): say why it differs; recorded in the run's events",
            max_length=1000)] = None,
    ) -> ProposalResult:
        """Apply a change to a parent, store the new program and (by default) evaluate it.

        Returns its score, whether it is correct, the error if any, and the deltas to its parent and the best.
        An evaluation still running after wait_s comes back with status `running` and goes on by itself (even if
        this call is cancelled): wait_for(run_id, [its id]) returns its result."""
        return await _call(steps.propose_candidate(
            ws, run_id, parent_id, patch=patch, code=code, patch_type=patch_type, description=description,
            evaluate_now=evaluate, ticket=ticket, progress=_progress(ctx), wait_s=wait_s,
            novelty_override=novelty_override))

    @mcp.tool(annotations=WRITES)
    async def evaluate(ctx: Context, run_id: RunId, program_id: ProgramId,
                       wait_s: WaitS = DEFAULT_WAIT_S) -> ProposalResult:
        """Evaluate a pending program (one proposed with evaluate=false, or interrupted) and return its score.

        On a program being evaluated, waits for it like wait_for. Still running after wait_s: status `running`."""
        return await _call(steps.evaluate(ws, run_id, program_id, progress=_progress(ctx), wait_s=wait_s))

    @mcp.tool(annotations=READ_ONLY)
    async def wait_for(
        ctx: Context,
        run_id: RunId,
        program_ids: Annotated[list[ProgramId] | None, Field(
            description="programs to wait for; omit for every program of the run being evaluated now",
            max_length=200)] = None,
        wait_s: WaitS = DEFAULT_WAIT_S,
    ) -> WaitResult:
        """Wait until one of the given programs is evaluated (or failed), at most wait_s seconds.

        Returns at once the ones already finished, with their scores and deltas, and lists those still running;
        call it again for those. Sends progress notifications while it waits."""
        return await _call(waiting.wait_for(ws, run_id, program_ids, wait_s, _progress(ctx)))

    @mcp.tool(annotations=READ_ONLY)
    async def get_archive(
        run_id: RunId,
        limit: Annotated[int, Field(description="programs per page (1-200)")] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page", max_length=512)] = None,
        order: Annotated[Literal["score", "newest", "oldest"], Field(description="sort order")] = "score",
        island: Annotated[int | None, Field(description="only this island", ge=0, le=1000)] = None,
        correct_only: Annotated[bool, Field(description="only programs that passed the checker")] = False,
    ) -> ArchivePage:
        """Page through a run's programs (scores, status, errors; no code: use get_program for code)."""
        return await _call(views.get_archive(ws, run_id, limit, cursor, order, island, correct_only))

    @mcp.tool(annotations=READ_ONLY)
    async def get_program(run_id: RunId, program_id: ProgramId) -> ProgramDetail:
        """One program with its code, diff against its parent, metrics, feedback and output tails."""
        return await _call(views.get_program(ws, run_id, program_id))

    @mcp.tool(annotations=READ_ONLY)
    async def get_lineage(run_id: RunId, program_id: ProgramId) -> Lineage:
        """The chain of ancestors of a program, oldest first, with their scores."""
        return await _call(views.get_lineage(ws, run_id, program_id))

    @mcp.tool(annotations=READ_ONLY)
    async def get_progress_plot(run_id: RunId) -> Image:
        """A PNG chart of the best score over evaluations (with the best-known target), to look at a run."""
        run = await _call(ws.run(run_id))
        png = render_progress_png(await _call(history.progress_points(ws, run_id)), run.target_score)
        return Image(data=png, format="png")

    @mcp.prompt(title="Evolve a program with evomcp")
    def evolve(task: str = "circle_packing_26", steps: str = "10") -> str:
        """Teaches the evolution loop: start a run, then sample, change, propose, read, repeat."""
        return EVOLVE_PROMPT.format(task=task, steps=steps)

    @mcp.resource("evomcp://runs/{run_id}/programs/{program_id}", mime_type="text/x-python",
                  description="the code of one program of a run")
    async def program_code(run_id: int, program_id: int) -> str:
        in_range = 0 < run_id < 2**63 and 0 < program_id < 2**63
        program = await ws.archive.get_program(run_id, program_id) if in_range else None
        if program is None:
            raise ResourceNotFoundError(f"run {run_id} has no program {program_id}")
        return program.code

    return mcp


def _progress(ctx: Context) -> Callable[[float, str], Awaitable[None]]:
    async def report(elapsed: float, message: str) -> None:
        try:
            await ctx.report_progress(elapsed, None, message)
        except Exception:  # a client that does not listen must not break the evaluation
            pass

    return report
