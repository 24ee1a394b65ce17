"""Parent side of the sandbox: spawn the child, feed it, cap its output, kill it on time.

The child gets its own session (so a timeout kills its whole process group), a
private working directory, an environment with nothing of the server's secrets,
and rlimits it applies to itself before any candidate code runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

CHILD_SCRIPT = Path(__file__).with_name("child.py")

# Variables a candidate may see; everything else (API keys, tokens, proxies) is dropped.
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass
class Limits:
    timeout_s: float = 60.0
    address_space_bytes: int | None = 4 * 1024**3
    cpu_seconds: int | None = None  # default: timeout rounded up, plus one
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
    output_truncated: bool = False
    isolation: str = "none"
    signal_name: str | None = field(default=None)


class _Tail:
    """Keeps the last `cap` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.total > self.cap:
            text = f"[... {self.total - self.cap} earlier bytes dropped ...]\n" + text
        return text


def clean_environment(workdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({k: "1" for k in _THREAD_VARS})
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir),
        NUMBA_CACHE_DIR=str(workdir / ".numba"),
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    return env


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _drain(stream: ByteReceiveStream | None, tail: _Tail) -> None:
    if stream is None:
        return
    async for chunk in stream:
        tail.add(chunk)


async def _drain_fd(fd: int, sink: bytearray, cap: int) -> bool:
    """Read a pipe fd to EOF without a thread; returns False when it held more than `cap`."""
    os.set_blocking(fd, False)
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return True
            if len(sink) + len(chunk) > cap:
                return False
            sink += chunk
    finally:
        os.close(fd)


async def run_child(spec: dict[str, Any], workdir: Path, limits: Limits) -> ChildOutcome:
    """Run child.py with `spec` in `workdir` under `limits`; never raises for candidate behaviour."""
    read_fd, write_fd = os.pipe()
    spec = {**spec, "result_fd": write_fd, "limits": limits.rlimits()}
    started = time.monotonic()
    try:
        process = await anyio.open_process(
            [sys.executable, "-I", str(CHILD_SCRIPT)],
            cwd=workdir,
            env=clean_environment(workdir),
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    out, err = _Tail(limits.output_tail_bytes), _Tail(limits.output_tail_bytes)
    result_bytes = bytearray()
    result_fits = True
    timed_out = False

    async def read_result() -> None:
        nonlocal result_fits
        result_fits = await _drain_fd(read_fd, result_bytes, limits.result_max_bytes)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, out)
            tg.start_soon(_drain, process.stderr, err)
            tg.start_soon(read_result)
            assert process.stdin is not None
            try:
                await process.stdin.send(json.dumps(spec).encode())
                await process.stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            with anyio.move_on_after(limits.timeout_s) as scope:
                await process.wait()
            timed_out = scope.cancelled_caught
            # Kill the whole group either way: grandchildren must not outlive the evaluation.
            kill_group(process.pid)
            await process.wait()
            # Pipes held open by an escaped descendant must not hang us.
            tg.cancel_scope.deadline = anyio.current_time() + 2.0
    finally:
        kill_group(process.pid)
        with anyio.CancelScope(shield=True):
            await process.aclose()
    elapsed = time.monotonic() - started

    result: dict[str, Any] | None = None
    result_error: str | None = None
    if not result_fits:
        result_error = f"the result was larger than {limits.result_max_bytes} bytes"
    elif result_bytes:
        try:
            result = json.loads(result_bytes)
            if not isinstance(result, dict):
                result, result_error = None, "the result channel held something other than a JSON object"
        except ValueError:
            result_error = "the result channel held invalid JSON"
    returncode = process.returncode
    signal_name = None
    if returncode is not None and returncode < 0:
        try:
            signal_name = signal.Signals(-returncode).name
        except ValueError:
            signal_name = f"signal {-returncode}"
    return ChildOutcome(
        returncode=returncode,
        timed_out=timed_out,
        result=result,
        result_error=result_error,
        stdout_tail=out.text(),
        stderr_tail=err.text(),
        elapsed_s=elapsed,
        output_truncated=out.total > out.cap or err.total > err.cap,
        isolation=(result or {}).get("isolation", "none") if result else "none",
        signal_name=signal_name,
    )
