"""The `evomcp` command: serve over MCP, run a loop in the foreground, inspect runs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from .. import __version__
from ..tools import runs, views
from ..tools.errors import EvoError
from ..tools.workspace import open_workspace
from .hardening import make_undumpable
from .settings import default_db

log = logging.getLogger("evomcp")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help="archive file (default: $EVOMCP_DB or the per-user data directory)")
    p.add_argument("--slots", type=int, default=None, help="evaluations at once (default: number of cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evomcp", description="LLM-driven program evolution over MCP")
    parser.add_argument("--version", action="version", version=f"evomcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    _add_common(serve)
    serve.add_argument("--http", action="store_true", help="speak streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")

    run = sub.add_parser("run", help="evolve a task in the foreground with the built-in driver")
    _add_common(run)
    run.add_argument("task", help="built-in task name (see `evomcp tasks`) or path of a task directory")
    run.add_argument("--budget", type=int, default=300, help="candidates to propose (default 300)")
    run.add_argument("--concurrency", type=int, default=None, help="workers (default: slots)")
    run.add_argument("--seed", type=int, default=None, help="random seed")
    run.add_argument("--resume", type=int, default=None, metavar="RUN_ID", help="continue this run")

    sub.add_parser("tasks", help="list the built-in tasks")
    runs_p = sub.add_parser("runs", help="list the runs in the archive")
    _add_common(runs_p)
    show = sub.add_parser("show", help="show a run's status, or its best program with --best")
    _add_common(show)
    show.add_argument("run_id", type=int)
    show.add_argument("--best", action="store_true", help="print the code of the best program")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("EVOMCP_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make_undumpable()
    handler = {"serve": _serve, "run": _run, "tasks": _tasks, "runs": _runs, "show": _show}[args.command]
    try:
        anyio.run(handler, args)
    except EvoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _db(args: argparse.Namespace) -> Path:
    return args.db or default_db()


async def _on_signal(stop: Callable[[], None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s received: shutting down", signal.Signals(signum).name)
            stop()
            return


async def _serve(args: argparse.Namespace) -> None:
    """Serve until the client goes away or SIGINT/SIGTERM; the archive is closed cleanly either way."""
    from .app import build_server

    async with open_workspace(_db(args), args.slots) as ws:
        server = build_server(ws)
        log.info("archive %s", ws.archive.path)
        async with anyio.create_task_group() as tg:
            if not args.http:
                tg.start_soon(_on_signal, tg.cancel_scope.cancel)
                await server.run_stdio_async()
                tg.cancel_scope.cancel()
                return
            import uvicorn

            class Uvicorn(uvicorn.Server):
                @contextlib.contextmanager
                def capture_signals(self):  # signals are ours: see _on_signal
                    yield

            app = server.streamable_http_app(host=args.host)
            http = Uvicorn(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
            tg.start_soon(_on_signal, lambda: setattr(http, "should_exit", True))
            log.info("serving streamable HTTP on http://%s:%d/mcp", args.host, args.port)
            await http.serve()
            tg.cancel_scope.cancel()


async def _run(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from .driver import drive

    console = Console(stderr=True)
    async with open_workspace(_db(args), args.slots) as ws:
        if args.seed is not None:
            import numpy as np

            ws.rng = np.random.default_rng(args.seed)
        if args.resume is not None:
            status = await runs.get_run_status(ws, args.resume)
            if status.run.status != "running":
                await ws.archive.set_run_status(args.resume, "running")
        else:
            status = await runs.start_run(ws, args.task)
        run_id = status.run.run_id
        initial = status.best.combined_score if status.best else None
        console.print(f"run {run_id} on {status.run.task}: archive {ws.archive.path}")
        started = time.monotonic()
        best = [initial]

        def table() -> Table:
            t = Table.grid(padding=(0, 2))
            elapsed = time.monotonic() - started
            t.add_row("proposed", f"{stats_box[0].attempted}/{args.budget}" if stats_box else "0")
            t.add_row("best", f"{best[0]!r}" if best[0] is not None else "-")
            if initial is not None and best[0] is not None:
                t.add_row("gain", f"{best[0] - initial:+.10g}")
            if status.target_score is not None:
                t.add_row("target", repr(status.target_score))
            rate = stats_box[0].evaluated / elapsed if stats_box and elapsed > 0 else 0.0
            t.add_row("rate", f"{rate:.1f} candidates/s")
            return t

        stats_box: list = []
        with Live(table(), console=console, refresh_per_second=4, transient=False) as live:
            def on_result(result, stats) -> None:
                if not stats_box:
                    stats_box.append(stats)
                if result is not None and result.is_new_best:
                    best[0] = result.program.combined_score
                live.update(table())

            interrupted = False

            def interrupt() -> None:
                nonlocal interrupted
                interrupted = True
                tg.cancel_scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(_on_signal, interrupt)
                await drive(ws, run_id, budget=args.budget, concurrency=args.concurrency or ws.executor.slots,
                            on_result=on_result)
                tg.cancel_scope.cancel()
        if interrupted:
            console.print(f"interrupted; nothing is lost. Continue with: evomcp run {args.task} --resume {run_id}")
        final = await runs.get_run_status(ws, run_id)
        console.print(
            f"run {run_id}: initial {initial!r} -> best {final.best.combined_score if final.best else None!r} "
            f"after {final.evaluated} evaluations in {time.monotonic() - started:.1f} s "
            f"(best program: evomcp show {run_id} --best)"
        )


async def _tasks(args: argparse.Namespace) -> None:
    from ..evaluators.task import BUILTIN_TASKS

    for task in BUILTIN_TASKS.values():
        print(f"{task.name:24} {task.summary}")


async def _runs(args: argparse.Namespace) -> None:
    async with open_workspace(_db(args)) as ws:
        for run in (await runs.list_runs(ws)).runs:
            status = await runs.get_run_status(ws, run.run_id)
            best = status.best.combined_score if status.best else None
            print(f"{run.run_id:5} {run.status:11} {run.task:24} evaluated {status.evaluated:6}  best {best!r}")


async def _show(args: argparse.Namespace) -> None:
    async with open_workspace(_db(args)) as ws:
        status = await runs.get_run_status(ws, args.run_id)
        if args.best:
            if status.best is None:
                raise EvoError(f"run {args.run_id} has no correct program yet")
            print((await views.get_program(ws, args.run_id, status.best.id)).code, end="")
            return
        print(status.model_dump_json(indent=2))

