"""Newline-delimited JSON requests and replies with a long-lived helper process.

There is no background reader: whichever caller is waiting reads the next reply
line under a lock and files it under its request id. So a channel needs no task
group and can be opened and closed from any task (and any pytest fixture).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from anyio.abc import Process


class ChannelError(RuntimeError):
    pass


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class JsonLineChannel:
    """Starts `argv` on first use (and again if it died); the process must first print {"ready": ...}."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None, start_timeout: float = 120.0):
        self.argv = list(argv)
        self.env = env
        self.start_timeout = start_timeout
        self.ready_info: dict[str, Any] = {}
        self.last_message: dict[str, Any] = {}  # the latest reply read, whoever it was for
        self._process: Process | None = None
        self._buffer = b""
        self._replies: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._write_lock = anyio.Lock()
        self._read_lock = anyio.Lock()
        # called before each start: may change argv and return the fds to pass and a clean-up to run
        # once the process said ready (or failed to)
        self.prepare: Callable[[], tuple[tuple[int, ...], Callable[[], None]]] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def aclose(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        for reply in self._replies.values():
            reply.setdefault("lost", True)

    async def _ensure_started(self) -> Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        if self._process is not None:  # it died: whoever waited on it is told by aclose()
            await self.aclose()
        self._buffer = b""
        pass_fds, cleanup = self.prepare() if self.prepare is not None else ((), None)
        try:
            self._process = await anyio.open_process(self.argv, env=self.env, stderr=None, start_new_session=True,
                                                     pass_fds=pass_fds)
            with anyio.fail_after(self.start_timeout):
                message = await self._read_message(self._process)
        finally:
            if cleanup is not None:
                cleanup()
        if not message.get("ready"):
            raise ChannelError(f"{self.argv[-1]} said {message!r} instead of ready")
        self.ready_info = message
        return self._process

    async def start(self) -> dict[str, Any]:
        async with self._write_lock:
            await self._ensure_started()
        return self.ready_info

    async def _read_message(self, process: Process) -> dict[str, Any]:
        assert process.stdout is not None
        while b"\n" not in self._buffer:
            try:
                chunk = await process.stdout.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                raise ChannelError("the helper process exited") from None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    async def send(self, message: dict[str, Any]) -> int:
        """Send a request; returns its id, under which `wait` finds the replies."""
        self._next_id += 1
        request_id = self._next_id
        self._replies[request_id] = {}
        line = (json.dumps({**message, "id": request_id}) + "\n").encode()
        async with self._write_lock:
            process = await self._ensure_started()
            assert process.stdin is not None
            try:
                await process.stdin.send(line)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                # it died since the last request and is not reaped yet (its return code still unknown): start
                # it again and send once more; requests waiting on the dead one are told they are lost
                await self.aclose()
                self._replies[request_id] = {}
                process = await self._ensure_started()
                assert process.stdin is not None
                await process.stdin.send(line)
        return request_id

    def forget(self, request_id: int) -> None:
        self._replies.pop(request_id, None)

    async def wait(self, request_id: int, key: str | tuple[str, ...], timeout: float) -> dict[str, Any] | None:
        """The replies so far once they hold `key` (or one of the keys; the process died: key "lost");
        None on timeout."""
        keys = (key,) if isinstance(key, str) else key
        reply = self._replies[request_id]
        with anyio.move_on_after(timeout):
            while not any(k in reply for k in keys) and not reply.get("lost"):
                async with self._read_lock:
                    if any(k in reply for k in keys) or reply.get("lost"):
                        break
                    process = self._process
                    if process is None:
                        reply["lost"] = True
                        break
                    try:
                        message = await self._read_message(process)
                    except ChannelError:
                        await self.aclose()
                        break
                    self.last_message = message
                    if message.get("id") in self._replies:
                        self._replies[message["id"]].update(message)
            return reply
        return None
