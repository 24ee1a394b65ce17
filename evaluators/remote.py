"""Scale-out: evaluations on an existing Ray or Dask cluster, with the same sandbox as locally.

`RemoteExecutor` is an `Executor` (slots, the trusted scorer, verdicts) whose `_run` sends
the job, as JSON, to a worker, where `worker.SandboxHost` runs it through the same
`sandbox.run_job` as the local executor, and reads the child's raw outcome back as JSON.
Scoring stays on the server. The engines only move jobs and bytes: no cluster manager here.

- Task directories are shipped content-addressed (`bundles`): Ray workers fetch the bundle
  from the object store (`ray.put` once per digest) on a cache miss; Dask workers answer
  `need_bundle` once, and get the bytes with the next attempt on the same worker.
- Worker loss: a job whose worker died is retried once (on another worker), then recorded
  as failed with a reason naming the lost workers. Engine-level retries are off (Ray
  `max_restarts=0`; Dask removals are watched through scheduler events), so the count is ours.
- Timeouts, kills and limits are the child's own, enforced on the worker: neither engine's
  cancel semantics nor its lack of per-task memory limits changes what a candidate can do.

Backends: `RayExecutor` (ray_backend.py, extra `evomcp[ray]`) and `DaskExecutor`
(dask_backend.py, extra `evomcp[dask]`, SLURM/PBS/... through dask-jobqueue).
"""

from __future__ import annotations

from abc import abstractmethod

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import anyio

from .bundles import Bundle, BundleError, Bundles
from .executor import Executor, SandboxError
from .sandbox import ChildOutcome
from .task import Task
from .worker import PROTOCOL

log = logging.getLogger("evomcp.executor")

BACKENDS = ("local", "ray", "dask")
MAX_ATTEMPTS = 2  # the first attempt and one retry elsewhere


class BackendError(RuntimeError):
    """An executor backend that cannot be used (extra not installed, cluster unreachable); says what to do."""


class WorkerLost(Exception):
    """The worker running a job died (or was removed) before answering."""

    def __init__(self, worker: str, detail: str = ""):
        super().__init__(worker, detail)
        self.worker = worker
        self.detail = detail


_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_KEPT_PREFIXES = ("RAY_", "DASK_", "EVOMCP_")


def secret_names(environ: dict[str, str] | None = None) -> list[str]:
    """Environment variables that look like credentials (API keys, tokens, passwords)."""
    environ = os.environ if environ is None else environ
    return [k for k in environ if _SECRET_NAME.search(k) and not k.startswith(_KEPT_PREFIXES)]


@contextlib.contextmanager
def scrubbed_environment() -> Iterator[None]:
    """Drop credential-looking variables from os.environ while a local cluster starts.

    The processes of a cluster that evomcp starts itself inherit the environment at that
    moment; the server's API keys must not be among them. Used only around a cluster start.
    """
    saved = {k: os.environ.pop(k) for k in secret_names()}
    try:
        yield
    finally:
        os.environ.update(saved)


class RemoteExecutor(Executor):
    """The shared part of the Ray and Dask backends: jobs out as JSON, outcomes back, retry on worker loss.

    `address` empty: start a local cluster with `slots` workers; otherwise the engine's address of
    an existing cluster. `slots` None: the cluster's CPUs (threads) when it is connected.
    """

    backend = "remote"

    def __init__(self, address: str = "", slots: int | None = None, isolate: bool = True,
                 hide: tuple[str, ...] = ()):
        super().__init__(slots, isolate)
        self.address = address or ""
        self._requested_slots = slots
        self._hide = list(hide)
        self._bundles = Bundles()
        self._start_lock = anyio.Lock()
        self.started = False
        self.owns_cluster = False
        self.lost_workers: list[str] = []  # every worker loss seen, oldest first
        self.retried = 0

    def hide(self, *paths: str) -> None:
        self._hide.extend(p for p in paths if p not in self._hide)

    async def __aenter__(self) -> RemoteExecutor:
        await self.start()
        return self

    async def start(self) -> None:
        """Connect to the cluster (or start a local one); idempotent."""
        async with self._start_lock:
            if not self.started:
                await self._start()
                self.started = True
                log.info("%s executor: %s, %d slots", self.backend, self.describe(), self.slots)

    def describe(self) -> str:
        return ("a local cluster started by evomcp" if self.owns_cluster else f"cluster {self.address}")

    async def aclose(self) -> None:
        try:
            if self.started:
                with anyio.CancelScope(shield=True):
                    await self._stop()
        finally:
            self.started = False
            await super().aclose()

    # -- what a backend implements

    @abstractmethod
    async def _start(self) -> None:
        """Connect to the cluster, or start a local one."""

    @abstractmethod
    async def _stop(self) -> None:
        """Let go of the cluster (and stop it if this executor started it)."""

    @abstractmethod
    async def _submit(self, job_json: str, bundle: Bundle | None, ship: bool, where: str | None) -> str:
        """Run the job on a worker and return its JSON reply; raise WorkerLost if the worker died.

        `ship`: include the bundle's bytes (the worker said it lacks them); `where`: the worker that said so.
        """

    # -- the shared flow

    async def _run(self, job: dict[str, Any], task: Task | None) -> ChildOutcome:
        await self.start()
        job = {**job, "protocol": PROTOCOL, "isolate": self.isolate, "hide": self._hide}
        bundle = None
        if task is not None and task.has_folder:
            try:
                bundle = await self._bundles.get(task.source)
            except (BundleError, OSError) as exc:
                raise SandboxError(f"cannot ship the task directory to the workers: {exc}") from None
            job["task_hash"] = bundle.digest
        job_json = json.dumps(job)
        lost: list[WorkerLost] = []
        ship, where = False, None
        for _ in range(MAX_ATTEMPTS + 3):  # attempts, plus a bundle request or two
            try:
                reply = json.loads(await self._submit(job_json, bundle, ship, where))
            except WorkerLost as exc:
                lost.append(exc)
                self.lost_workers.append(exc.worker)
                if len(lost) >= MAX_ATTEMPTS:
                    raise SandboxError(_lost_reason(lost)) from None
                self.retried += 1
                log.warning("%s died while evaluating a program (%s); retrying it on another worker",
                            exc.worker, exc.detail or "no detail")
                ship, where = False, None
                continue
            if "need_bundle" in reply:
                ship, where = True, reply.get("worker")
                continue
            if "error" in reply:
                raise SandboxError(f"sandbox failure on {reply.get('worker', 'a worker')}: {reply['error']}")
            return ChildOutcome.from_dict(reply["outcome"])
        raise SandboxError("the workers kept asking for the task directory; is the worker's temporary "
                           "directory writable?")


def _lost_reason(lost: list[WorkerLost]) -> str:
    first, last = lost[0], lost[-1]
    detail = f" ({last.detail})" if last.detail else ""
    return (f"worker lost: {first.worker} died while evaluating this program, and {last.worker} died too on the "
            f"retry{detail}; the program was not scored (evaluate it again once the cluster is healthy)")
