"""A real OpenAI-compatible HTTP server for tests and benchmarks, with scripted replies and injected faults.

Runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread, so it keeps answering
while the test's asyncio loop is busy.  Drive it with the real ``openai`` client::

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.add_model("gpt-x", lambda req: "hello")
        fake.script("gpt-x", [HTTPError(429, retry_after=0.1), "ok"])
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test")

A *reply* is a ``str`` (assistant content), a ``Reply`` (content plus overrides) or a
``Fault``.  The request's ``model`` selects the reply: the model's script queue first, then
its responder, then the instance's default responder, else 404 ``model_not_found``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Union

__all__ = [
    "FakeOpenAI", "Reply", "Fault", "HTTPError", "Timeout", "Malformed", "Empty", "Invalid",
    "Recorded", "count_tokens",
]


# --------------------------------------------------------------------------- replies & faults


@dataclass(frozen=True)
class Reply:
    """A successful chat reply with optional overrides of usage and finish_reason."""

    content: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


class Fault:
    """Base class of injected failures."""


_ERROR_KINDS = {  # status -> (type, code, default message)
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class HTTPError(Fault):
    """Answer ``status`` with an OpenAI-style error body (``retry_after`` adds that header)."""

    status: int = 500
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None

    def body(self) -> dict:
        kind, code, msg = _ERROR_KINDS.get(self.status, ("api_error", None, f"HTTP {self.status}"))
        return _error(self.message or msg, self.type or kind, self.code or code)


@dataclass(frozen=True)
class Timeout(Fault):
    """Sleep ``seconds`` (interrupted by server shutdown), then answer ``then`` normally."""

    seconds: float = 5.0
    then: Union[str, Reply] = "late reply"


@dataclass(frozen=True)
class Malformed(Fault):
    """Answer ``status`` with a body that is not JSON (declared as ``content_type``)."""

    body: str = "this is {not json"
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Empty(Fault):
    """A 200 whose content is ``content`` ("" or None); for embeddings, ``data == []``."""

    content: str | None = ""


@dataclass(frozen=True)
class Invalid(Fault):
    """A 200 whose normal body lacks the keys ``drop`` (default: "choices", or "data" for embeddings)."""

    drop: tuple[str, ...] | None = None


ReplyLike = Union[str, Reply, Fault]
Responder = Callable[[dict], Any]


class Recorded(NamedTuple):
    """One received request: path, requested model (or None), parsed JSON body, headers subset."""

    path: str
    model: str | None
    body: dict
    headers: dict[str, str]


# --------------------------------------------------------------------------- helpers


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _text(content: Any) -> str:
    """Text of a message content: a string, a list of parts, or None."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def count_tokens(text: str) -> int:
    """The fake tokenizer: ``len(text) // 4``, at least 1 for non-empty text, 0 for empty."""
    return max(1, len(text) // 4) if text else 0


def prompt_tokens(body: dict) -> int:
    """Prompt tokens of a chat request: all message contents joined, // 4, at least 1."""
    text = "".join(_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict))
    return max(1, len(text) // 4)


def embed(text: str, dim: int = 64) -> list[float]:
    """Deterministic L2-normalised hashed bag of words (lower-cased ``\\w+`` tokens)."""
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vec))
    if norm == 0:
        vec[0], norm = 1.0, 1.0
    # round-trip through float32 so "float" and "base64" encodings give identical values
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(x / norm for x in vec))))


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads
    block_on_close = True
    request_queue_size = 128  # listen backlog: dozens of clients connecting at once are not reset (default 5)

    def __init__(self, fake: "FakeOpenAI", addr: tuple[str, int]):
        self.fake = fake
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # backstop for idle keep-alive connections

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        self.server.fake._track(self.connection, add=False)

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, headers, body = self.server.fake._handle(method, self.path, dict(self.headers), raw)
        except Exception as exc:  # a bug in a responder must not kill the connection silently
            status, headers, body = 500, {}, _error(f"fake server error: {exc!r}", "server_error")
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            headers.setdefault("content-type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            # headers and body in one write: two small writes stall ~40 ms on loopback (Nagle + delayed ACK)
            self._headers_buffer.extend([b"\r\n", data])
            self.flush_headers()
            self.wfile.flush()
        except OSError:  # client gave up (e.g. after its timeout)
            self.close_connection = True


class FakeOpenAI:
    """OpenAI-compatible server on 127.0.0.1 with per-model scripted replies and faults.

    Args:
        api_key: if set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
        responder: default responder for models without their own, ``(request_json) -> reply``.
        embedding_dim: default embedding dimension (a request's ``dimensions`` overrides it).
        port: port to bind (0 = a free one).
    """

    def __init__(self, api_key: str | None = None, responder: Responder | None = None,
                 *, embedding_dim: int = 64, port: int = 0):
        self.api_key = api_key
        self.default_responder = responder
        self.embedding_dim = embedding_dim
        self._port = port
        self._lock = threading.Lock()
        self._responders: dict[str, Responder] = {}
        self._scripts: dict[str, deque] = {}
        self._requests: list[Recorded] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> "FakeOpenAI":
        """Bind and serve in a background thread."""
        self._stopping.clear()
        self._server = _Server(self, ("127.0.0.1", self._port))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeOpenAI:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, interrupt sleeping Timeout faults, close connections, join threads."""
        if self._server is None:
            return
        with self._lock:
            self._stopping.set()
            conns = list(self._conns)
        self._server.shutdown()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeOpenAI is not running"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """E.g. ``http://127.0.0.1:PORT/v1`` -- pass to ``openai.OpenAI(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting

    def add_model(self, name: str, responder: Responder | ReplyLike) -> None:
        """Register a responder for ``name``; a constant reply is wrapped as ``lambda req: reply``."""
        if not callable(responder):
            responder = (lambda reply: lambda req: reply)(responder)
        with self._lock:
            self._responders[name] = responder

    def script(self, name: str, replies: list[ReplyLike]) -> None:
        """Queue replies for ``name`` (appended to any queued ones), consumed one per request."""
        with self._lock:
            self._scripts.setdefault(name, deque()).extend(replies)

    def pending(self, name: str) -> int:
        """Number of scripted replies not yet consumed for ``name``."""
        with self._lock:
            return len(self._scripts.get(name, ()))

    # ---- recording

    @property
    def requests(self) -> list[Recorded]:
        """Snapshot of all requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def calls(self, model: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, optionally filtered by model and/or path suffix (e.g. "/chat/completions")."""
        return [r for r in self.requests
                if (model is None or r.model == model) and (path is None or r.path.endswith(path))]

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def embed(self, text: str, dim: int | None = None) -> list[float]:
        """The vector the server returns for ``text``."""
        return embed(text, dim or self.embedding_dim)

    # ---- request handling (called from handler threads)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if not add:
                self._conns.discard(conn)
            elif self._stopping.is_set():
                conn.close()
            else:
                self._conns.add(conn)

    def _next_reply(self, model: str | None, body: dict, chat: bool) -> tuple[bool, Any]:
        """(found, reply) for ``model``: script queue, model responder, default (chat only)."""
        with self._lock:
            queue = self._scripts.get(model)
            if queue:
                return True, queue.popleft()
            responder = self._responders.get(model) or (self.default_responder if chat else None)
            scripted = queue is not None
        if responder is not None:
            return True, responder(body)
        if scripted and chat:
            raise LookupError(f"script for model {model!r} exhausted and no responder")
        return False, None

    def _handle(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, dict, Any]:
        headers = {k.lower(): v for k, v in headers.items()}
        path = path.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        kept = {k: v for k, v in headers.items()
                if k in ("authorization", "content-type", "user-agent") or k.startswith("x-")}
        with self._lock:
            self._requests.append(Recorded(path, model, body if isinstance(body, dict) else {}, kept))

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, HTTPError(401).body()
        route = (method, path.rstrip("/"))
        if route == ("GET", "/v1/models"):
            return 200, {}, self._models()
        if route not in (("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings")):
            return 404, {}, _error(f"Unknown request URL: {method} {path}", "invalid_request_error")
        if not isinstance(body, dict):
            return 400, {}, _error("Request body is not a JSON object.", "invalid_request_error")
        if body.get("stream"):
            return 400, {}, _error("FakeOpenAI does not support streaming.", "invalid_request_error",
                                   param="stream")
        chat = path.rstrip("/").endswith("/chat/completions")
        try:
            found, reply = self._next_reply(model, body, chat)
        except LookupError as exc:
            return 500, {}, _error(str(exc), "server_error")
        if chat and not found:
            return 404, {}, HTTPError(404, f"The model `{model}` does not exist or you do not have "
                                           "access to it.").body()
        return self._render(chat, body, reply)

    def _render(self, chat: bool, body: dict, reply: Any) -> tuple[int, dict, Any]:
        if isinstance(reply, HTTPError):
            headers = {} if reply.retry_after is None else {"retry-after": f"{reply.retry_after:g}"}
            return reply.status, headers, reply.body()
        if isinstance(reply, Malformed):
            return reply.status, {"content-type": reply.content_type}, reply.body.encode()
        if isinstance(reply, Timeout):
            deadline = time.monotonic() + reply.seconds
            while not self._stopping.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
            return self._render(chat, body, reply.then)
        out = self._chat(body, reply) if chat else self._embeddings(body, reply)
        if isinstance(reply, Invalid):
            for key in reply.drop or (("choices",) if chat else ("data",)):
                out.pop(key, None)
        return 200, {"x-request-id": out.get("id", "req-fake")}, out

    def _chat(self, body: dict, reply: Any) -> dict:
        if isinstance(reply, Empty):
            reply = Reply(reply.content)
        elif isinstance(reply, Invalid):
            reply = Reply("")
        elif isinstance(reply, str):
            reply = Reply(reply)
        elif not isinstance(reply, Reply):
            raise TypeError(f"responder returned {type(reply).__name__}, expected str, Reply or Fault")
        pt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_tokens(body)
        ct = reply.completion_tokens if reply.completion_tokens is not None else count_tokens(reply.content or "")
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }

    def _embeddings(self, body: dict, reply: Any) -> dict:
        """Non-Fault replies (or none) are ignored: vectors always come from ``embed``."""
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) or not isinstance(inputs, list) else inputs
        texts = [t if isinstance(t, str) else json.dumps(t) for t in inputs]
        dim = int(body.get("dimensions") or self.embedding_dim)
        b64 = body.get("encoding_format") == "base64"
        data = [] if isinstance(reply, Empty) else [
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(struct.pack(f"<{dim}f", *v)).decode() if b64 else v}
            for i, v in enumerate(embed(t, dim) for t in texts)
        ]
        tokens = sum(max(1, len(t) // 4) for t in texts)
        return {"object": "list", "data": data, "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _models(self) -> dict:
        with self._lock:
            names = sorted(set(self._responders) | set(self._scripts))
        return {"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "fake-openai"} for n in names]}
