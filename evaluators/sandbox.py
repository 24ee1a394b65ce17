"""Parent side of the sandbox: the warm fork server, limits, timeouts and reading what a child left.

`ForkServer` starts `child.py --serve` once, with an environment that holds none of
the server's secrets, and asks it for one forked child per candidate. The child
leaves `stdout.txt`, `stderr.txt` and `result.json` in its private working directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .cgroups import PidsCgroups
from .channel import JsonLineChannel, kill_group

CHILD_SCRIPT = Path(__file__).with_name("child.py")

# Variables a candidate may see; everything else (API keys, tokens, proxies) is dropped.
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# Files and folders of the user that a candidate has no business reading.
SECRET_PATHS = (".ssh", ".aws", ".azure", ".config/gcloud", ".kube", ".docker", ".gnupg", ".netrc",
                ".git-credentials", ".pypirc", ".npmrc", ".config/openai", ".anthropic")


@dataclass
class Limits:
    timeout_s: float = 60.0
    address_space_bytes: int | None = 4 * 1024**3
    cpu_seconds: int | None = None  # default: timeout rounded up, plus two
    file_size_bytes: int | None = 64 * 1024**2
    open_files: int | None = 256
    processes: int | None = None
    output_tail_bytes: int = 8192
    result_max_bytes: int = 16 * 1024**2

    def rlimits(self) -> dict[str, int | None]:
        cpu = self.cpu_seconds if self.cpu_seconds is not None else int(self.timeout_s) + 2
        return {
            "address_space_bytes": self.address_space_bytes,
            "cpu_seconds": cpu,
            "file_size_bytes": self.file_size_bytes,
            "open_files": self.open_files,
            "processes": self.processes,
        }


@dataclass
class ChildOutcome:
    returncode: int | None
    timed_out: bool
    result: dict[str, Any] | None
    result_error: str | None
    stdout_tail: str
    stderr_tail: str
    elapsed_s: float
    isolation: str = "none"
    signal_name: str | None = None
    forks_refused: int = 0
    # script tasks: what evaluate.py left in --results_dir (metrics.json, correct.json); None: over the size cap
    files: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChildOutcome:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def base_environment() -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({k: "1" for k in _THREAD_VARS})
    env.update(PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    return env


def child_environment(workdir: Path) -> dict[str, str]:
    return {**base_environment(), "HOME": str(workdir), "TMPDIR": str(workdir),
            "NUMBA_CACHE_DIR": str(workdir / ".numba")}


def read_tail(path: Path, cap: int) -> str:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > cap:
                f.seek(size - cap)
            data = f.read(cap)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > cap:
        text = f"[... {size - cap} earlier bytes dropped ...]\n" + text
    return text


def read_result(path: Path, cap: int) -> tuple[dict[str, Any] | None, str | None]:
    try:
        size = path.stat().st_size
    except OSError:
        return None, None
    if size > cap:
        return None, f"the result was larger than {cap} bytes"
    try:
        result = json.loads(path.read_bytes())
    except ValueError:
        return None, "the result file held invalid JSON"
    if not isinstance(result, dict):
        return None, "the result file held something other than a JSON object"
    return result, None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ForkServerError(RuntimeError):
    pass


class ForkServer:
    """One warm `child.py --serve` process; forks a fresh child per request."""

    def __init__(self, preload: tuple[str, ...] = ("numpy",), isolate: bool = True,
                 hide: tuple[str, ...] = (), max_pids: int = 512):
        self.isolate = isolate
        self.hide = list(hide)
        self.cgroups = PidsCgroups(max_pids)
        self._cgroup: Path | None = None  # the template's; every child inherits it at fork
        self._cgroup_pid: int | None = None
        self._running = 0  # children asked for and not yet reaped
        # --owner names the server process in the process table (the template ignores it)
        self._channel = JsonLineChannel([sys.executable, "-I", str(CHILD_SCRIPT), "--owner", str(os.getpid()),
                                         "--serve", *preload],
                                        env=base_environment())

    @property
    def pid(self) -> int | None:
        return self._channel.pid

    async def aclose(self) -> None:
        await self._channel.aclose()
        if self._cgroup is not None:
            cgroup, self._cgroup, self._cgroup_pid = self._cgroup, None, None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.cgroups.remove, cgroup)

    async def _template_cgroup(self) -> Path | None:
        """Start the template if needed and make sure it sits in its pids cgroup."""
        await self._channel.start()
        pid = self._channel.pid
        if pid is not None and pid != self._cgroup_pid:
            old, self._cgroup = self._cgroup, None
            if old is not None:
                await anyio.to_thread.run_sync(self.cgroups.remove, old)
            cgroup = await anyio.to_thread.run_sync(self.cgroups.create, f"template-{os.getpid()}-{pid}")
            if await anyio.to_thread.run_sync(self.cgroups.adopt, cgroup, pid):
                self._cgroup = cgroup
            self._cgroup_pid = pid
        return self._cgroup

    @staticmethod
    def describe(level: str, cgroup: bool) -> str:
        return f"{level}+pids-cgroup" if cgroup else level

    async def run(self, spec: dict[str, Any], workdir: Path, limits: Limits,
                  hide: list[str] | None = None, isolate: bool | None = None) -> ChildOutcome:
        """Fork a child for `spec` in `workdir`; `hide` and `isolate` override the server's defaults."""
        cgroup = await self._template_cgroup()
        refused_before = self.cgroups.refused(cgroup)
        spec = {**spec, "workdir": str(workdir), "env": child_environment(workdir), "limits": limits.rlimits(),
                "isolate": self.isolate if isolate is None else isolate,
                "hide": self.hide if hide is None else hide}
        started = time.monotonic()
        pid = None
        timed_out = False
        forks_refused = 0
        request_id = None
        self._running += 1
        try:
            for attempt in range(2):  # a template that died since the last request is restarted once
                request_id = await self._channel.send({"spec": spec})
                reply = await self._channel.wait(request_id, "pid", 30)
                if reply is not None and not reply.get("lost"):
                    break
                self._channel.forget(request_id)
            else:
                raise ForkServerError("the fork server did not start the child")
            if reply.get("pid") is None:
                raise ForkServerError(reply.get("error", "the fork server could not fork"))
            pid = reply["pid"]
            remaining = limits.timeout_s - (time.monotonic() - started)
            reply = await self._channel.wait(request_id, "exit", max(remaining, 0.01))
            if reply is None:
                timed_out = True
                kill_group(pid)
                reply = await self._channel.wait(request_id, "exit", 10)
            if reply is None or reply.get("lost"):
                raise ForkServerError("the fork server lost the child")
        finally:
            if pid is not None:
                kill_group(pid)  # grandchildren must not outlive the evaluation
            forks_refused = max(0, self.cgroups.refused(cgroup) - refused_before)
            if forks_refused or timed_out:  # let the kernel reap what was killed before the next fork
                self._running -= 1
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.cgroups.drain, cgroup, 1 + 3 * self._running)
                self._running += 1
            if request_id is not None:
                self._channel.forget(request_id)
            self._running -= 1
        elapsed = time.monotonic() - started
        exit_code, sig = reply.get("exit"), reply.get("signal")
        if sig is None and exit_code is not None and exit_code > 128:
            sig = exit_code - 128  # the candidate was PID 1 of its namespace: status passed on as 128 + signal
        result, result_error = read_result(workdir / "result.json", limits.result_max_bytes)
        return ChildOutcome(
            returncode=exit_code if sig is None else -sig,
            timed_out=timed_out,
            result=result,
            result_error=result_error,
            stdout_tail=read_tail(workdir / "stdout.txt", limits.output_tail_bytes),
            stderr_tail=read_tail(workdir / "stderr.txt", limits.output_tail_bytes),
            elapsed_s=elapsed,
            isolation=self.describe((result or {}).get("isolation", "none"), cgroup is not None),
            signal_name=None if sig is None else signal_name(sig),
            forks_refused=forks_refused,
        )


RESULT_FILES = ("metrics.json", "correct.json")


def read_results_dir(results_dir: Path, cap: int) -> dict[str, str | None]:
    """The files of the script contract that evaluate.py wrote; None for one larger than `cap` bytes."""
    files: dict[str, str | None] = {}
    for name in RESULT_FILES:
        path = results_dir / name
        try:
            if not path.is_file():
                continue
            files[name] = None if path.stat().st_size > cap else path.read_text(errors="replace")
        except OSError:
            continue
    return files


async def run_job(fork: ForkServer, job: dict[str, Any], task_dir: Path | None,
                  hide: list[str] | None = None) -> ChildOutcome:
    """Run one job in a fresh private work directory, on this machine, and remove the directory.

    A job is plain JSON, the same wherever it runs (the local executor here, a Ray or Dask worker
    elsewhere): `kind` ("entry", "evaluate_fn", "script" or "probe"), `code`, `suffix`, `entry`,
    `evaluate_name`, `limits` (the fields of Limits) and optionally `isolate`. `task_dir` is the task
    directory to copy in (kinds evaluate_fn and script); `hide` overrides the fork server's list.
    """
    limits = Limits(**job.get("limits", {}))
    kind = job["kind"]
    workdir = Path(tempfile.mkdtemp(prefix="evomcp-probe-" if kind == "probe" else "evomcp-eval-"))
    try:
        spec: dict[str, Any] = {"kind": kind}
        results_dir = workdir / "results"
        if kind != "probe":
            program_path = workdir / f"program{job.get('suffix', '.py')}"
            program_path.write_text(job["code"])
            spec["program_path"] = str(program_path)
        if kind == "entry":
            spec["entry"] = job["entry"]
        elif kind in ("evaluate_fn", "script"):
            if task_dir is None:
                raise ForkServerError("a task-directory job came without its task directory")
            # The user's evaluate.py runs inside the sandbox too: it imports the candidate.
            task_copy = workdir / "task"
            await anyio.to_thread.run_sync(shutil.copytree, task_dir, task_copy)
            spec.update(task_dir=str(task_copy), evaluate_path=str(task_copy / job.get("evaluate_name", "evaluate.py")),
                        results_dir=str(results_dir))
            results_dir.mkdir()
        outcome = await fork.run(spec, workdir, limits, hide=hide, isolate=job.get("isolate"))
        if kind == "script":
            outcome.files = read_results_dir(results_dir, limits.result_max_bytes)
        return outcome
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, workdir, True)
