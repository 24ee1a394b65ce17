"""The Ray backend: one async actor per slot, each with a warm sandbox (extra `evomcp[ray]`).

`--cluster ''` starts a local Ray instance with `--slots` CPUs (its processes get the server's
environment without credential-looking variables); `--cluster auto`, `HOST:6379` or
`ray://HOST:10001` join an existing cluster. Each slot is an actor (`worker.RaySandboxActor`,
`num_cpus=1`, no restarts, no task retries) whose event loop keeps a warm fork server; a job
goes to an idle actor. An actor that dies (its process, or its node) fails the call with
RayActorError: the job is retried once on another actor and a replacement actor is started.
Task bundles are `ray.put` once per digest and fetched by an actor only on a cache miss.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import anyio

from .bundles import Bundle
from .executor import SandboxError
from .remote import BackendError, RemoteExecutor, WorkerLost, scrubbed_environment
from .worker import RaySandboxActor

log = logging.getLogger("evomcp.executor")


class _Slot:
    def __init__(self, handle: Any, number: int):
        self.handle = handle
        self.number = number
        self.name: str | None = None  # known after its first reply


def _describe_death(exc: BaseException) -> str:
    """'ray worker pid P on IP' from Ray's actor-death message where it says so."""
    text = str(exc)
    pid = re.search(r"\bpid: (\d+)", text)
    ip = re.search(r"\bip: ([\w.:-]+)", text)
    if pid and ip:
        return f"ray worker pid {pid.group(1)} on {ip.group(1)}"
    return ""


class RayExecutor(RemoteExecutor):
    backend = "ray"

    def __init__(self, address: str = "", slots: int | None = None, isolate: bool = True,
                 hide: tuple[str, ...] = ()):
        super().__init__(address, slots, isolate, hide)
        self._ray: Any = None
        self._actor_class: Any = None
        self._slots: list[_Slot] = []
        self._idle_send, self._idle = anyio.create_memory_object_stream[_Slot](10_000)
        self._refs: dict[str, Any] = {}
        self._next_number = 0

    def _init_ray(self) -> None:
        ray = self._ray
        common: dict[str, Any] = {"namespace": "evomcp", "log_to_driver": False, "configure_logging": False}
        if self.address:
            ray.init(address=self.address, **common)
        else:
            with scrubbed_environment():
                ray.init(num_cpus=self._requested_slots or os.cpu_count() or 1, include_dashboard=False, **common)
            self.owns_cluster = True

    async def _start(self) -> None:
        try:
            import ray
        except ImportError as exc:
            raise BackendError(f"the ray executor needs Ray: pip install 'evomcp[ray]' ({exc})") from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                # on this thread, not a worker thread: Ray ties its processes to the starting thread's
                # life (parent-death signal), and anyio retires idle worker threads. Blocks a few seconds.
                self._init_ray()
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the message says what
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise BackendError(f"cannot connect to {where}: {type(exc).__name__}: {exc}") from None
        slots = self._requested_slots or int(ray.cluster_resources().get("CPU", 1)) or 1
        self._set_slots(slots)
        self._actor_class = ray.remote(RaySandboxActor).options(
            num_cpus=1, max_restarts=0, max_task_retries=0, max_concurrency=8)
        for _ in range(self.slots):
            self._add_slot()

    def _add_slot(self) -> None:
        self._next_number += 1
        slot = _Slot(self._actor_class.remote(), self._next_number)
        self._slots.append(slot)
        self._idle_send.send_nowait(slot)

    def _drop_slot(self, slot: _Slot) -> None:
        if slot in self._slots:
            self._slots.remove(slot)
        try:
            self._ray.kill(slot.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass

    def describe(self) -> str:
        return "a local Ray instance started by evomcp" if self.owns_cluster else f"Ray cluster {self.address}"

    async def _stop(self) -> None:
        for slot in list(self._slots):
            self._drop_slot(slot)
        self._refs.clear()
        if self.owns_cluster and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
            self.owns_cluster = False

    def _bundle_ref(self, bundle: Bundle) -> Any:
        ref = self._refs.get(bundle.digest)
        if ref is None:
            ref = self._refs[bundle.digest] = self._ray.put(bundle.data)
        return ref

    async def _submit(self, job_json: str, bundle: Bundle | None, ship: bool, where: str | None) -> str:
        ray = self._ray
        exceptions = ray.exceptions
        lost = (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError,
                exceptions.ObjectLostError, exceptions.OwnerDiedError, exceptions.LocalRayletDiedError)
        slot = await self._idle.receive()
        keep = True
        ref = None
        try:
            ref = slot.handle.run.remote(job_json, [self._bundle_ref(bundle)] if bundle is not None else None)
            reply = await ref
            ref = None
            if slot.name is None:
                slot.name = _reply_worker(reply)
            return reply
        except lost as exc:
            keep = False
            name = slot.name or _describe_death(exc) or f"ray actor #{slot.number}"
            self._drop_slot(slot)
            self._add_slot()  # a replacement; Ray places it wherever there is room
            raise WorkerLost(name, str(exc).splitlines()[0][:200]) from None
        except exceptions.RayTaskError as exc:
            raise SandboxError(f"sandbox failure on {slot.name or 'a ray worker'}: {exc}"[:2000]) from None
        finally:
            if ref is not None:  # cancelled while waiting: cancel the call too (the child is killed there)
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001
                    pass
            if keep:
                self._idle_send.send_nowait(slot)


def _reply_worker(reply: str) -> str | None:
    try:
        return json.loads(reply).get("worker")
    except ValueError:
        return None
