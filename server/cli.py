"""The `evomcp` command: serve over MCP, run a loop in the foreground, inspect runs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from pydantic import ValidationError

from .. import __version__
from ..store import StorageError
from ..tools import runs, views
from ..tools.errors import EvoError, one_line
from ..tools.workspace import open_workspace
from .hardening import make_undumpable
from .settings import default_db

if TYPE_CHECKING:
    from .driver import Driver
    from .ensemble import ModelSpec

log = logging.getLogger("evomcp")


def _at_least(low: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type: a number (int or float) of at least `low`; argparse names the flag in its one-line error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
        return value
    return parse


def _positive(text: str) -> float:
    value = _at_least(0.0, float)(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help="archive file (default: $EVOMCP_DB or the per-user data directory)")
    p.add_argument("--slots", type=_at_least(1), default=None, help="evaluations at once (default: number of cores)")


def _add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["local", "ray", "dask"], default=os.environ.get("EVOMCP_EXECUTOR", "local"),
                   help="where candidates run: this machine (default), a Ray cluster or a Dask cluster "
                        "(pip install 'evomcp[ray]' / 'evomcp[dask]'; see docs/SCALE_OUT.md)")
    p.add_argument("--cluster", default=os.environ.get("EVOMCP_CLUSTER", ""), metavar="ADDRESS",
                   help="the cluster to use: Ray 'auto', HOST:6379 or ray://HOST:10001; Dask tcp://HOST:8786, a "
                        "scheduler file, or slurm|pbs|sge|lsf|htcondor (dask-jobqueue); empty: start a local "
                        "cluster of --slots workers")


@contextlib.asynccontextmanager
async def _executor(args: argparse.Namespace):
    """The executor of `serve` and `run`: None (open_workspace makes the local one) or a started Ray/Dask backend."""
    if args.executor == "local" and not args.cluster:
        yield None
        return
    from ..evaluators.backends import BackendError, make_executor

    try:
        executor = make_executor(args.executor, args.cluster, args.slots)
        await executor.__aenter__()
    except BackendError as exc:
        raise EvoError(str(exc)) from None
    try:
        yield executor
    finally:
        await executor.aclose()


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake said in one line (and where the flags are listed) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evomcp", description="LLM-driven program evolution over MCP")
    parser.add_argument("--version", action="version", version=f"evomcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    _add_common(serve)
    _add_executor(serve)
    serve.add_argument("--http", action="store_true", help="speak streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument("--token", default=None, help="bearer token HTTP clients must send (default: "
                       "$EVOMCP_TOKEN, else a new one printed on start)")
    serve.add_argument("--no-auth", action="store_true", help="HTTP without a token (loopback binds only)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                       help="Host header accepted besides the bind address (DNS-rebinding protection)")
    serve.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, help="largest HTTP request body")
    serve.add_argument("--max-runs", type=int, default=1000, help="most runs the archive may hold")
    serve.add_argument("--resume-drivers", action="store_true",
                       help="restart the built-in drivers of runs that were being driven when the server stopped")

    run = sub.add_parser("run", help="evolve a task in the foreground with the built-in driver")
    _add_common(run)
    _add_executor(run)
    run.add_argument("task", help="built-in task name (see `evomcp tasks`) or path of a task directory")
    run.add_argument("--model", action="append", default=[], metavar="SPEC",
                     help="a model of the ensemble: a model id, or key=value pairs: name, model, base_url, "
                          "key_env, price_in, price_out (USD per million tokens), temps (e.g. 0.2/0.8); repeatable")
    run.add_argument("--models", type=Path, default=None, help="JSON or TOML file with a list of model specs")
    run.add_argument("--budget", type=_at_least(1), default=300,
                     help="candidates the run evaluates in all, resumes included (default 300)")
    run.add_argument("--max-cost", type=_at_least(0.0, float), default=None, metavar="USD",
                     help="cap on model spending")
    run.add_argument("--max-wall", type=_positive, default=None, metavar="S", help="cap on wall-clock seconds")
    run.add_argument("--target", type=float, default=None, help="stop at this score")
    run.add_argument("--concurrency", type=_at_least(1), default=None, help="candidates at once (default: slots)")
    run.add_argument("--no-perturb", action="store_true", help="leave out the offline perturb operator")
    run.add_argument("--offline-fallback", action="store_true",
                     help="when every model is failing, go on with the offline operator alone (default: stop "
                          "the run and say why)")
    run.add_argument("--meta-every", type=_at_least(0), default=0, metavar="K", help="model recommendations every K")
    run.add_argument("--progress-every", type=_positive, default=15.0, metavar="S",
                     help="where stderr is not a terminal (a log, CI): a progress line every S seconds (default 15)")
    run.add_argument("--seed", type=int, default=None, help="random seed")
    run.add_argument("--resume", type=_at_least(1), default=None, metavar="RUN_ID",
                     help="continue this run (of the same task) toward the same --budget")
    run.add_argument("--config", default=None, metavar="JSON", help="run config as JSON (see start_run)")

    report = sub.add_parser("report", help="write a self-contained HTML report of a run")
    _add_common(report)
    report.add_argument("run_id", type=_at_least(1))
    report.add_argument("-o", "--output", type=Path, default=None, help="file (default: report-RUN.html)")

    export = sub.add_parser("export", help="write a run's programs as JSON lines or CSV")
    _add_common(export)
    export.add_argument("run_id", type=_at_least(1))
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")

    ui = sub.add_parser("ui", help="watch the runs of an archive in a browser (read-only, this machine only)")
    ui.add_argument("--db", type=Path, default=None,
                    help="archive file (default: $EVOMCP_DB or the per-user data directory)")
    ui.add_argument("--host", default="127.0.0.1", help="loopback address to bind (127.0.0.1, localhost or ::1)")
    ui.add_argument("--port", type=int, default=8766, help="port (default 8766)")

    sub.add_parser("tasks", help="list the built-in tasks")
    runs_p = sub.add_parser("runs", help="list the runs in the archive")
    _add_common(runs_p)
    show = sub.add_parser("show", help="show a run's status, or its best program with --best")
    _add_common(show)
    show.add_argument("run_id", type=_at_least(1))
    show.add_argument("--best", action="store_true", help="print the code of the best program")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("EVOMCP_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # their per-request and per-retry INFO lines (openai 3 sends through httpx2); a failing model is reported by the driver
    for noisy in ("openai", "httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    make_undumpable()
    handler = {"serve": _serve, "run": _run, "tasks": _tasks, "runs": _runs, "show": _show,
               "export": _export, "report": _report, "ui": _ui}[args.command]
    try:
        anyio.run(handler, args)
    except EvoError as exc:
        print(f"error: {_in_cli_words(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    except BrokenPipeError:  # `evomcp runs | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


_TOOL_WORDS = {"call list_tasks": "run `evomcp tasks`", "call list_runs": "run `evomcp runs`",
               "list_runs, resume_run": "`evomcp runs`, `evomcp run TASK --resume RUN_ID`",
               "resume_run": "`evomcp run TASK --resume RUN_ID`", "start_run": "`evomcp run TASK`"}


def _in_cli_words(message: str) -> str:
    """A tool's error as the CLI's user reads it: the commands to type, not the MCP tools' names."""
    for tool, words in _TOOL_WORDS.items():
        message = message.replace(tool, words)
    return message


def _db(args: argparse.Namespace) -> Path:
    """The archive file: --db, $EVOMCP_DB or the data directory (created); a named file's folder must exist."""
    if args.db is None and not os.environ.get("EVOMCP_DB"):
        return default_db()
    path, where = (args.db, "--db") if args.db is not None else (default_db(), "$EVOMCP_DB")
    if path.is_dir():
        raise EvoError(f"{where} {path} is a folder; give a file in it, e.g. {path / 'archive.db'}")
    if not path.parent.is_dir():
        raise EvoError(f"{where} {path}: the folder {path.parent} does not exist; create it (mkdir -p "
                       f"{path.parent}) or give another path")
    return path


async def _existing_run(ws, run_id: int):
    """The run, or a one-line error that says how to list the runs (the CLI's words, not a tool's)."""
    run = await ws.archive.get_run(run_id)
    if run is None:
        raise EvoError(f"the archive {ws.archive.path} has no run {run_id}; `evomcp runs` lists its runs")
    return run


async def _on_signal(stop: Callable[[], None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s received: shutting down", signal.Signals(signum).name)
            stop()
            return


async def _serve(args: argparse.Namespace) -> None:
    """Serve until the client goes away or SIGINT/SIGTERM; the archive is closed cleanly either way."""
    from .app import build_server
    from .driver import Drivers, resume_driven_runs
    from .ensemble import OpenAIProviders

    token = _http_token(args) if args.http else None
    token_printed = args.http and not args.no_auth and not (args.token or os.environ.get("EVOMCP_TOKEN"))
    async with _executor(args) as executor, open_workspace(_db(args), args.slots, executor=executor) as ws, \
            anyio.create_task_group() as driver_tasks:
        drivers = Drivers(ws, driver_tasks)
        ws.max_runs = args.max_runs
        ws.providers = OpenAIProviders(ws.archive)
        server = build_server(ws, drivers, token=token, base_url=f"http://{_url_host(args.host)}:{args.port}")
        log.info("archive %s", ws.archive.path)
        if args.resume_drivers:
            for run_id in await resume_driven_runs(ws, drivers):
                log.info("resumed the driver of run %d", run_id)
        async with anyio.create_task_group() as tg:
            if args.http:
                await _serve_http(server, args, tg, token, token_printed)
            else:
                tg.start_soon(_on_signal, tg.cancel_scope.cancel)
                await server.run_stdio_async()
            tg.cancel_scope.cancel()
        driver_tasks.cancel_scope.cancel()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _http_token(args: argparse.Namespace) -> str | None:
    """The bearer token of the HTTP transport; binding beyond loopback without one is refused."""
    from .auth import LOOPBACK, new_token

    if args.no_auth:
        if args.host not in LOOPBACK:
            raise EvoError(f"--no-auth is only allowed on a loopback address; {args.host} needs a token")
        return None
    token = args.token or os.environ.get("EVOMCP_TOKEN")
    if not token:
        token = new_token()
        print(f"evomcp: HTTP clients must send 'Authorization: Bearer {token}'", file=sys.stderr, flush=True)
    return token


async def _serve_http(server, args: argparse.Namespace, tg, token: str | None, token_printed: bool) -> None:
    """MCP on /mcp (bearer token) and the web view on /ui (the login link sets a cookie), on one port."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from . import web
    from .auth import LOOPBACK

    class Uvicorn(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # signals are ours: see _on_signal
            yield

    security = None
    if args.host not in LOOPBACK or args.allowed_host:  # loopback binds get the SDK's defaults
        hosts = [args.host, f"{args.host}:*", "127.0.0.1:*", "localhost:*", *args.allowed_host]
        security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                             allowed_origins=[f"http://{h}" for h in hosts])
    app = server.streamable_http_app(host=args.host, transport_security=security,
                                     max_request_body_size=args.max_body_bytes)
    async with open_workspace(_db(args), reset=False) as view:  # the web view reads on a connection of its own
        names = [*(LOOPBACK if args.host in LOOPBACK else (args.host, "127.0.0.1", "localhost")), *args.allowed_host]
        app = web.beside(app, web.web_app(view, token, names))
        # h11 even where httptools is installed (uvicorn[standard]): httptools keeps the whitespace around
        # header values that RFC 9110 says to drop, and the SDK then refuses a padded Mcp-Name header
        http = Uvicorn(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", http="h11"))
        tg.start_soon(_on_signal, lambda: setattr(http, "should_exit", True))
        log.info("serving streamable HTTP on http://%s:%d/mcp", args.host, args.port)
        base = f"http://{_url_host('127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host)}:{args.port}"
        link = web.login_url(base, token) if token is None or token_printed else \
            f"{base}{web.LOGIN}?token=TOKEN (TOKEN: the value of --token or $EVOMCP_TOKEN)"
        print(f"evomcp: watch the runs in a browser: {link}", file=sys.stderr, flush=True)
        await http.serve()


async def _ui(args: argparse.Namespace) -> None:
    """The web view of an archive on loopback, without a token, read-only: no sandbox, no write."""
    import uvicorn
    from starlette.responses import RedirectResponse

    from . import web
    from .auth import LOOPBACK

    if args.host not in LOOPBACK:
        raise EvoError(f"--host {args.host}: `evomcp ui` serves this machine only (127.0.0.1, localhost or ::1); to "
                       f"share the view, use `evomcp serve --http --host {args.host}`, which needs a token")

    class Uvicorn(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # signals are ours: see _on_signal
            yield

    async def home(scope, receive, send) -> None:
        if scope["type"] == "http":
            await RedirectResponse(f"{web.PREFIX}/")(scope, receive, send)

    async with open_workspace(_db(args), reset=False) as ws, anyio.create_task_group() as tg:
        app = web.beside(home, web.web_app(ws, None, list(LOOPBACK)))
        http = Uvicorn(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", http="h11",
                                      lifespan="off"))
        tg.start_soon(_on_signal, lambda: setattr(http, "should_exit", True))
        print(f"evomcp: the runs of {ws.archive.path} are at http://{_url_host(args.host)}:{args.port}{web.PREFIX}/ "
              f"(read-only; Ctrl-C stops)", file=sys.stderr, flush=True)
        await http.serve()
        tg.cancel_scope.cancel()


def parse_model_spec(text: str) -> ModelSpec:
    """`gpt-4.1-mini` or `name=fast,model=m,base_url=http://...,key_env=KEY,price_in=0.4,price_out=1.6,temps=0/0.7`."""
    from .ensemble import ModelSpec

    if "=" not in text:
        return ModelSpec(name=text, model=text)
    fields: dict[str, object] = {}
    aliases = {"key_env": "api_key_env", "price_in": "price_in_per_m", "price_out": "price_out_per_m",
               "temps": "temperatures", "url": "base_url"}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if key == "temperatures":
            fields[key] = [float(t) for t in value.split("/")]
        elif key == "api_key_env" and value.strip().lower() in ("", "none", "null"):
            fields[key] = None
        else:
            fields[key] = value.strip()
    fields.setdefault("model", fields.get("name"))
    try:
        return ModelSpec.model_validate(fields)
    except ValidationError as exc:
        message = one_line(exc)
        for short, name in aliases.items():  # the names the user wrote
            message = message.replace(f"{name}:", f"{short}:")
        raise EvoError(f"--model {text!r}: {message}; the keys are name, model, base_url, key_env, price_in, "
                       f"price_out, temps, max_retries, timeout_s, max_tokens") from None


def load_models(args: argparse.Namespace) -> list[ModelSpec]:
    from .ensemble import ModelSpec

    specs = [parse_model_spec(text) for text in args.model]
    if args.models is not None:
        text = args.models.read_text()
        data = tomllib.loads(text) if args.models.suffix == ".toml" else json.loads(text)
        items = data.get("models", []) if isinstance(data, dict) else data
        specs += [ModelSpec.model_validate(m) for m in items]
    return specs


@dataclasses.dataclass
class _Driving:
    """What `evomcp run` has set going, for its signal handler and its last words."""

    run_id: int | None = None
    driver: Driver | None = None
    signalled: bool = False
    setup: anyio.CancelScope = dataclasses.field(default_factory=anyio.CancelScope)

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: the driver stops after its steps in flight; before it exists, setting up stops."""
        self.signalled = True
        if self.driver is not None:
            self.driver.stop()
        else:
            self.setup.cancel()


async def _run(args: argparse.Namespace) -> None:
    from .ensemble import preload_client

    if args.model or args.models:
        preload_client()  # a second of imports, done while the run and its sandbox are set up
    from rich.console import Console

    from .driver import DriverConfig
    from .ensemble import Ensemble, ModelError

    console = Console(stderr=True)
    logging.getLogger("evomcp.driver").setLevel(logging.WARNING)  # a failing model is said by the progress lines
    try:
        config = DriverConfig(models=load_models(args), perturb=not args.no_perturb, max_evaluations=args.budget,
                              max_cost_usd=args.max_cost, max_wall_s=args.max_wall, target_score=args.target,
                              concurrency=min(64, args.concurrency or args.slots or os.cpu_count() or 1),
                              meta_every=args.meta_every, offline_fallback=args.offline_fallback)
        Ensemble(config.models).check(budgeted=config.max_cost_usd is not None)  # before any run is made
    except ValidationError as exc:
        raise EvoError(f"bad model configuration (--model/--models): {one_line(exc)}") from None
    except (ValueError, OSError, ModelError) as exc:
        raise EvoError(f"bad model configuration (--model/--models): {exc}") from None
    try:
        run_config = json.loads(args.config) if args.config else None
    except json.JSONDecodeError as exc:
        raise EvoError(f"--config is not JSON ({exc}); e.g. --config '{{\"num_islands\": 2}}'") from None
    db = _db(args)
    driving = _Driving()
    try:
        async with anyio.create_task_group() as signals:
            signals.start_soon(_on_signal, driving.interrupt)
            try:
                async with _executor(args) as executor, open_workspace(db, args.slots, executor=executor) as ws:
                    await _drive(args, console, config, run_config, ws, executor, driving)
            finally:
                signals.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # one error (a user's mistake, a full disk): said as itself
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    state = driving.driver.status.state if driving.driver is not None else "interrupted"
    if state == "failed":
        raise SystemExit(1)
    if driving.signalled:
        raise SystemExit(130)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


async def _drive(args, console, config, run_config, ws, executor, driving: _Driving) -> None:
    """Start or resume the run, drive it, and say how it ended (interrupted while setting up included)."""
    from .driver import Driver
    from .ensemble import OpenAIProviders
    from .progress import RunProgress

    db = ws.archive.path
    ws.providers = OpenAIProviders(ws.archive)
    if executor is not None and args.concurrency is None:  # as many candidates at once as the cluster has slots
        config = config.model_copy(update={"concurrency": min(64, executor.slots)})
    if args.seed is not None:
        import numpy as np

        ws.rng = np.random.default_rng(args.seed)
    newest = max((run.id for run in await ws.archive.list_runs()), default=0)
    with driving.setup:
        if args.resume is not None:
            await _check_resumable(ws, args)
            driving.run_id = args.resume
            status = await runs.resume_run(ws, args.resume)
        else:
            status = await runs.start_run(ws, args.task, config=run_config)
        driving.run_id = status.run.run_id
        before = await (await ws.state(driving.run_id)).candidates_evaluated()
        initial = await ws.archive.seed_score(driving.run_id)
        console.print(f"run {driving.run_id} on {status.run.task} (isolation {status.isolation}; scores "
                      f"{status.scoring}); archive {ws.archive.path}", soft_wrap=True, markup=False)
        if status.scoring != "trusted":
            console.print(f"scores: {status.scoring_detail}", soft_wrap=True, markup=False)
        for kind, note in status.notes.items():  # the task's settings; a model it needs, unless one is given
            if kind != "offline_operator" or not config.models:
                console.print(f"note: {note}", soft_wrap=True, markup=False)
        driving.driver = Driver(ws, driving.run_id, config, resume=args.resume is not None)
    run_id = driving.run_id
    if driving.driver is None:  # interrupted while setting up: the seed's evaluation (if begun) is kept pending
        made = [run.id for run in await ws.archive.list_runs() if run.id > newest]
        run_id = run_id or (made[-1] if made else None)
        if run_id is None:
            console.print("interrupted before a run was made; nothing to continue", soft_wrap=True, markup=False)
            return
        with anyio.CancelScope(shield=True):
            await ws.archive.set_run_status(run_id, "interrupted", "interrupted by a signal while it was set up")
        console.print(f"run {run_id} interrupted while it was set up; nothing is lost. Continue with: "
                      f"{_resume_command(args, db, run_id)}", soft_wrap=True, markup=False)
        return
    driver = driving.driver
    progress = RunProgress(console, ws, run_id, args.budget, initial, status.target_score, args.progress_every)
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress.show, driver)
        await driver.run()
        tg.cancel_scope.cancel()
    state, reason = driver.status.state, driver.status.reason
    ended = {"finished": "finished", "failed": "failed"}.get(state, "interrupted" if driving.signalled else "stopped")
    try:
        if (await ws.archive.get_run(run_id)).status == "running":  # not ended by someone else (stop_run)
            await ws.archive.set_run_status(run_id, ended, reason if not driving.signalled else
                                            "interrupted by a signal")
            await ws.archive.add_event(run_id, f"run_{ended}", {"reason": reason})
        final = await runs.get_run_status(ws, run_id)
    except StorageError as exc:
        console.print(f"error: {exc}", soft_wrap=True, markup=False)
        final = None
    if final is not None:
        best = final.best.combined_score if final.best else None
        console.print(
            f"run {run_id} {ended}: initial {initial!r} -> best {best!r}; {final.candidates_evaluated} candidates "
            f"evaluated in all, {final.candidates_evaluated - before} by this command ({driver.status.refused} steps "
            f"produced no candidate); {reason}. Best program: evomcp show {run_id} --best{_db_flag(args, db)}",
            soft_wrap=True, markup=False)
        for name, stats in final.models.items():
            if stats.get("failed"):
                console.print(f"model {name}: {stats['failed']} of {stats['calls']} calls failed (the last: "
                              f"{stats.get('last_error')})", soft_wrap=True, markup=False)
    if ended != "finished":
        console.print(f"{'nothing is lost. ' if ended == 'interrupted' else ''}Continue with: "
                      f"{_resume_command(args, db, run_id)}", soft_wrap=True, markup=False)


async def _check_resumable(ws, args: argparse.Namespace) -> None:
    """--resume continues a run of the task given on the command line, and no other."""
    from ..evaluators.task import TaskError, resolve_task

    run = await _existing_run(ws, args.resume)
    try:
        source = resolve_task(args.task).source
    except TaskError as exc:
        raise EvoError(f"task {args.task!r}: {exc}") from None
    if source != run.task_path:
        raise EvoError(f"--resume {run.id}: run {run.id} evolves {run.task_path}, not {source}; resume it with "
                       f"`evomcp run {shlex.quote(run.task_path)} --resume {run.id}{_db_flag(args, ws.archive.path)}`, "
                       f"or start a new run without --resume")


def _db_flag(args: argparse.Namespace, db: Path) -> str:
    return "" if args.db is None and not os.environ.get("EVOMCP_DB") and db == default_db() else \
        f" --db {shlex.quote(str(db.resolve()))}"


def _resume_command(args: argparse.Namespace, db: Path, run_id: int) -> str:
    """The command line that continues this run exactly: the same flags (budget, models, ...), its archive and
    --resume RUN_ID."""
    argv, skip = [], False
    for word in args.argv:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            argv.append(word)
    if args.db is None and "--db" not in argv and not any(w.startswith("--db=") for w in argv):
        argv += ["--db", str(db.resolve())]
    return shlex.join(["evomcp", *argv, "--resume", str(run_id)])


async def _tasks(args: argparse.Namespace) -> None:
    from ..evaluators.task import BUILTIN_TASKS

    for task in BUILTIN_TASKS.values():
        print(f"{task.name:24} {task.summary}")


async def _runs(args: argparse.Namespace) -> None:
    if not _db(args).exists():
        print(f"no archive at {_db(args)} yet: `evomcp run TASK` starts one", file=sys.stderr)
        return
    async with open_workspace(_db(args), reset=False) as ws:
        for run in (await runs.list_runs(ws)).runs:
            status = await runs.get_run_status(ws, run.run_id)
            best = status.best.combined_score if status.best else None
            print(f"{run.run_id:5} {run.status:11} {run.task:24} candidates {status.candidates_evaluated:6}  "
                  f"scores {run.scoring:12}  best {best!r}"
                  + (f"  ({run.status_reason})" if run.status_reason and run.status != "running" else ""))


async def _report(args: argparse.Namespace) -> None:
    from .report import build_report

    async with open_workspace(_db(args), reset=False) as ws:
        await _existing_run(ws, args.run_id)
        html = await build_report(ws, args.run_id, ws.archive.path.name)
    output = args.output or Path(f"report-{args.run_id}.html")
    try:
        output.write_text(html)
    except OSError as exc:
        raise EvoError(f"-o {output}: cannot write it ({exc.strerror}); give a file in a folder that exists") from None
    print(f"wrote {output}", file=sys.stderr)


async def _export(args: argparse.Namespace) -> None:
    from .export import export_run

    async with open_workspace(_db(args), reset=False) as ws:
        await _existing_run(ws, args.run_id)
        try:
            out = open(args.output, "w", newline="") if args.output else sys.stdout
        except OSError as exc:
            raise EvoError(f"-o {args.output}: cannot write it ({exc.strerror}); give a file in a folder that "
                           f"exists") from None
        try:
            count = await export_run(ws.archive, args.run_id, args.format, out)
        finally:
            if args.output:
                out.close()
    print(f"exported {count} programs", file=sys.stderr)


async def _show(args: argparse.Namespace) -> None:
    async with open_workspace(_db(args), reset=False) as ws:
        await _existing_run(ws, args.run_id)
        status = await runs.get_run_status(ws, args.run_id)
        if args.best:
            if status.best is None:
                raise EvoError(f"run {args.run_id} has no correct program yet")
            print((await views.get_program(ws, args.run_id, status.best.id)).code, end="")
            return
        print(status.model_dump_json(indent=2))

