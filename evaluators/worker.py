"""The worker side of the Ray and Dask backends: the local sandbox, on a cluster worker.

Every worker process that evaluates candidates keeps one `SandboxHost`: a warm fork server
(`child.py --serve`, started on first use with a scrubbed environment, restarted if it dies)
and the cache of task directories by content digest. A job arrives as JSON, runs exactly as
it would locally (`sandbox.run_job`: fresh work directory, forked child with its own
session, namespaces, pids cgroup, rlimits and timeout, killed with its whole process group),
and the child's raw outcome goes back as JSON. Nothing is scored here: built-in tasks are
scored by the trusted scorer on the server.

This module imports neither ray nor dask at import time; evomcp must be installed on the
workers (the same version as the server: jobs carry a protocol number).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import bundles
from .sandbox import SECRET_PATHS, ForkServer, run_job

PROTOCOL = 1
PRELOAD = ("numpy",)


class SandboxHost:
    """One warm fork server and the task cache of one worker process (bound to one event loop)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD):
        self.home_secrets = [str(Path.home() / p) for p in SECRET_PATHS]
        self.fork = ForkServer(preload=preload, hide=self.home_secrets)

    async def aclose(self) -> None:
        await self.fork.aclose()

    async def run(self, job_json: str, worker: str, bundle: bytes | None = None,
                  fetch: Callable[[], Awaitable[bytes]] | None = None) -> str:
        """Run one job; returns JSON: {"outcome": ...}, {"need_bundle": digest} or {"error": reason}."""
        reply: dict[str, Any] = {"worker": worker, "protocol": PROTOCOL}
        try:
            job = json.loads(job_json)
            if job.get("protocol") != PROTOCOL:
                reply["error"] = (f"this worker runs evomcp job protocol {PROTOCOL} but the server sent "
                                  f"{job.get('protocol')!r}: install the server's evomcp version on the workers")
                return json.dumps(reply)
            task_dir = None
            digest = job.get("task_hash")
            if digest:
                task_dir = bundles.cached(digest)
                if task_dir is None:
                    if bundle is None and fetch is not None:
                        bundle = await fetch()
                    if bundle is None:
                        reply["need_bundle"] = digest
                        return json.dumps(reply)
                    task_dir = await asyncio.to_thread(bundles.unpack, digest, bundle)
            hide = [*job.get("hide", []), *self.home_secrets]
            outcome = await run_job(self.fork, job, task_dir, hide=hide)
            reply["outcome"] = outcome.to_dict()
        except Exception as exc:  # noqa: BLE001 - reported to the server as a sandbox failure
            reply["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(reply)


_hosts: dict[int, SandboxHost] = {}


def host() -> SandboxHost:
    """The SandboxHost of this process's running event loop (created on first use)."""
    loop = id(asyncio.get_running_loop())
    if loop not in _hosts:
        _hosts[loop] = SandboxHost()
    return _hosts[loop]


# ---------------------------------------------------------------- Dask


async def dask_evaluate(job_json: str, bundle: bytes | None = None, key: str | None = None) -> str:
    """A Dask task: runs on the worker's event loop, so the host's fork server stays warm between tasks.

    Dask lets a cancelled task run to its end; this one watches its own key and stops (its child is
    killed with its process group) as soon as the key is cancelled or released: after the server
    gave up on it, or when Dask re-ran it on this worker after the server had already resubmitted it.
    """
    from distributed import get_worker

    worker = get_worker()
    run = asyncio.ensure_future(host().run(job_json, worker.address, bundle=bundle))
    try:
        while not run.done():
            await asyncio.wait({run}, timeout=0.2)
            state = getattr(worker.state.tasks.get(key), "state", None) if key else "executing"
            if state not in ("executing", "long-running", "resumed"):
                run.cancel()
                return json.dumps({"worker": worker.address, "error": "cancelled"})
        return run.result()
    finally:
        if not run.done():
            run.cancel()


# ---------------------------------------------------------------- Ray


class RaySandboxActor:
    """One slot of the Ray backend: an async actor holding a warm fork server (made a Ray actor by the backend)."""

    def __init__(self) -> None:
        self._host: SandboxHost | None = None
        self._name = f"ray worker pid {os.getpid()} on {socket.gethostname()}"

    def _ensure(self) -> SandboxHost:
        if self._host is None:
            try:
                import ray

                self._name = f"ray worker pid {os.getpid()} on {ray.util.get_node_ip_address()}"
            except Exception:  # noqa: BLE001 - a name is a nicety
                pass
            self._host = SandboxHost()
        return self._host

    async def run(self, job_json: str, bundle_ref: list | None = None) -> str:
        host = self._ensure()

        async def fetch() -> bytes:
            return await bundle_ref[0]

        return await host.run(job_json, self._name, fetch=fetch if bundle_ref else None)
