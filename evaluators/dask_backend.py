"""The Dask backend: jobs as Dask tasks run on the workers' event loops (extra `evomcp[dask]`).

`--cluster` selects the cluster:

- empty: a `LocalCluster` of `--slots` single-threaded worker processes, started by evomcp
  (its workers, restarts included, get the server's environment without credential-looking
  variables: they fork from a multiprocessing fork server started with that environment);
- `tcp://HOST:8786` (or `HOST:8786`): an existing scheduler;
- a path to a scheduler file (`dask scheduler --scheduler-file FILE`);
- `slurm`, `pbs`, `sge`, `lsf`, `htcondor`, `moab` or `oar`: a dask-jobqueue cluster configured
  by the `jobqueue` section of the Dask config (e.g. ~/.config/dask/jobqueue.yaml), scaled to
  `--slots` cores (so `--slots` candidates at once).

Each task is `worker.dask_evaluate`, a coroutine: it runs on the worker's event loop, where the
worker's `SandboxHost` keeps its fork server warm between tasks. Worker loss is watched through
the scheduler's `remove-worker` events (topic "all"): a job whose worker died is cancelled and
resubmitted once by evomcp (Dask's own rescheduling is thereby cut short, whatever the scheduler's
`allowed-failures`), then recorded as failed naming both workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from .bundles import Bundle
from .executor import SandboxError
from .remote import BackendError, RemoteExecutor, WorkerLost, scrubbed_environment, secret_names
from .worker import dask_evaluate

log = logging.getLogger("evomcp.executor")

JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
            "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster"}
KEY_PREFIX = "evomcp-evaluate-"


class DaskExecutor(RemoteExecutor):
    backend = "dask"

    def __init__(self, address: str = "", slots: int | None = None, isolate: bool = True,
                 hide: tuple[str, ...] = ()):
        super().__init__(address, slots, isolate, hide)
        self.client: Any = None
        self.cluster: Any = None
        self._watch: dict[str, asyncio.Future[WorkerLost]] = {}
        self._config: Any = None
        self._started_forkserver = False
        self._started_tracker = False

    def describe(self) -> str:
        if self.owns_cluster:
            kind = self.address or "local"
            return f"a {kind} Dask cluster started by evomcp (scheduler {self.client.scheduler.address})"
        return f"Dask scheduler {self.client.scheduler.address}"

    async def _start(self) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise BackendError(f"the dask executor needs Dask: pip install 'evomcp[dask]' ({exc})") from None
        address = self.address.strip()
        try:
            if not address:
                slots = self._requested_slots or os.cpu_count() or 1
                # worker processes (and the ones the nannies restart) fork from a fork server started
                # now, with a scrubbed environment
                self._config = dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
                from multiprocessing import forkserver, resource_tracker

                # helpers multiprocessing starts for this process; stopped again when the cluster closes
                self._started_forkserver = getattr(forkserver._forkserver, "_forkserver_pid", None) is None
                self._started_tracker = getattr(resource_tracker._resource_tracker, "_pid", None) is None
                with scrubbed_environment():
                    # started before Dask asks for it, so without Dask's preloads (5 s of imports here;
                    # each worker imports what it needs after the fork instead)
                    forkserver.ensure_running()
                    self.cluster = await LocalCluster(
                        n_workers=slots, threads_per_worker=1, processes=True, asynchronous=True,
                        dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                        silence_logs=logging.WARNING)
                self.owns_cluster = True
                self.client = await Client(self.cluster, asynchronous=True)
            elif address.lower() in JOBQUEUE:
                try:
                    import dask_jobqueue
                except ImportError:
                    raise BackendError("a jobqueue cluster needs dask-jobqueue: pip install 'evomcp[dask]'") from None
                name = address.lower()
                # batch systems pass the submitter's environment on (SLURM: --export=ALL): the job
                # script drops credential-looking variables before it starts the worker
                prologue = list(dask.config.get(f"jobqueue.{name}.job-script-prologue", None) or [])
                secrets = secret_names()
                if secrets:
                    prologue.append("unset " + " ".join(sorted(secrets)))
                self.cluster = await getattr(dask_jobqueue, JOBQUEUE[name])(
                    asynchronous=True, job_script_prologue=prologue)
                self.owns_cluster = True
                self.client = await Client(self.cluster, asynchronous=True)
                cores = int(dask.config.get(f"jobqueue.{name}.cores", None) or 1)  # per job
                if self._requested_slots is None:  # one job's worth
                    self._requested_slots = cores
                self.cluster.scale(jobs=-(-self._requested_slots // cores))
            elif address.endswith(".json") and Path(address).expanduser().is_file():
                self.client = await Client(scheduler_file=str(Path(address).expanduser()), asynchronous=True)
            else:
                self.client = await Client(address, asynchronous=True)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - Dask raises many kinds; the message says what
            await self._stop()
            where = f"the Dask cluster {address!r}" if address else "a local Dask cluster"
            raise BackendError(f"cannot start or reach {where}: {type(exc).__name__}: {exc}") from None
        slots = self._requested_slots
        if slots is None:
            workers = self.client.scheduler_info().get("workers", {})
            slots = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        self._set_slots(slots)
        self.client.subscribe_topic("all", self._on_event)

    def _on_event(self, event: Any) -> None:
        """Scheduler events: a worker removed unexpectedly fails the jobs it was running."""
        try:
            _, msg = event
        except (TypeError, ValueError):
            return
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        log.debug("dask: worker %s removed (expected %s), running %s", msg.get("worker"), msg.get("expected"),
                  msg.get("processing-tasks"))
        if msg.get("expected"):
            return
        keys = set(msg.get("processing-tasks") or ()) | set(msg.get("lost-computed-tasks") or ())
        for key in keys:
            waiter = self._watch.get(key) if isinstance(key, str) else None
            if waiter is not None and not waiter.done():
                waiter.set_result(WorkerLost(f"dask worker {msg.get('worker', '?')}", "the worker was removed"))

    async def _stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic("all")
        for closable in (self.client, self.cluster if self.owns_cluster else None):
            if closable is not None:
                with contextlib.suppress(Exception):
                    await closable.close()
        self.client = self.cluster = None
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None
        if self._started_forkserver:
            from multiprocessing import forkserver

            with contextlib.suppress(Exception):
                forkserver._forkserver._stop()
            self._started_forkserver = False
        if self._started_tracker:
            from multiprocessing import resource_tracker

            with contextlib.suppress(Exception):
                resource_tracker._resource_tracker._stop()
            self._started_tracker = False
        self.owns_cluster = False

    async def _submit(self, job_json: str, bundle: Bundle | None, ship: bool, where: str | None) -> str:
        from distributed.scheduler import KilledWorker

        key = f"{KEY_PREFIX}{uuid.uuid4().hex}"
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[WorkerLost] = loop.create_future()
        self._watch[key] = lost
        placement: dict[str, Any] = {"workers": [where], "allow_other_workers": True} if where else {}
        future = self.client.submit(dask_evaluate, job_json, bundle.data if (ship and bundle) else None, key,
                                    key=key, pure=False, retries=0, **placement)
        result = asyncio.ensure_future(future)
        try:
            await asyncio.wait({result, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                raise lost.result()
            try:
                return result.result()
            except KilledWorker as exc:
                raise WorkerLost(f"dask worker {getattr(exc.last_worker, 'address', '?')}",
                                 "the scheduler gave up on the task") from None
            except Exception as exc:  # noqa: BLE001 - the task itself failed: a worker-side problem
                raise SandboxError(f"sandbox failure on a dask worker: {type(exc).__name__}: {exc}"[:2000]) from None
        finally:
            self._watch.pop(key, None)
            if not result.done():
                result.cancel()
            elif not result.cancelled():
                result.exception()  # retrieved, so asyncio does not log it as never retrieved
            if future.status not in ("finished", "error") and self.client is not None:
                # cancelled, or its worker died: stop it (on the worker, the child is killed with its group)
                cancel = asyncio.ensure_future(self.client.cancel([future], force=True))
                cancel.add_done_callback(lambda t: t.cancelled() or t.exception())
            future.release()
