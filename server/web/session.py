"""Who may see the web view: a login link carrying the server's token sets a cookie; every other route wants it.

`GET /ui/login?token=...` compares the token in constant time (as digests, like the bearer check of /mcp),
sets an HttpOnly, SameSite=Strict cookie and redirects to the runs page, so the token leaves the address bar
and the history at once. The cookie holds a digest derived from the token, never the token itself (which also
lets a client write through /mcp). Without a token (`evomcp ui`, `serve --http --no-auth`, loopback only) every
route is open. Whatever the token, a request whose Host header is not one this server answers to is refused:
a DNS-rebinding page cannot read the view through a name of its own.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "evomcp_ui"
PREFIX = "/ui"
LOGIN = f"{PREFIX}/login"


def session_value(token: str) -> str:
    """The cookie's value: a digest of the token for this purpose only."""
    return hmac.new(token.encode(), b"evomcp web view session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(hashlib.sha256(a.encode()).digest(), hashlib.sha256(b.encode()).digest())


def login_url(base: str, token: str | None) -> str:
    from urllib.parse import quote

    return f"{base}{LOGIN}?token={quote(token, safe='')}" if token else f"{base}{PREFIX}/"


class Sessions:
    """The check every web route goes through (an ASGI middleware), and the login route."""

    def __init__(self, app: ASGIApp, token: str | None, hosts: list[str] | None):
        self.app = app
        self.token = token
        self.cookie = session_value(token) if token else None
        self.hosts = {h.lower() for h in hosts} if hosts else None  # None: any Host header

    def _host_ok(self, request: Request) -> bool:
        if self.hosts is None:
            return True
        host = request.headers.get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]") in self.hosts or host in self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response: Response | None = None
        if not self._host_ok(request):
            response = PlainTextResponse("this server does not answer to that host name (a name it should answer "
                                         "to goes in --allowed-host)", status_code=421)
        elif request.url.path == LOGIN:
            response = self.login(request)
        elif self.cookie is not None and not _same(request.cookies.get(COOKIE, ""), self.cookie):
            response = PlainTextResponse(
                "not signed in: open the login link that `evomcp serve --http` printed when it started "
                f"({LOGIN}?token=...)", status_code=401)
        if response is not None:
            _harden(response)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, _hardened(send))

    def login(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        given = request.query_params.get("token", "")
        if not _same(given, self.token):
            return PlainTextResponse("wrong token: copy the login link again from the server's output",
                                     status_code=403)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.set_cookie(COOKIE, self.cookie, httponly=True, samesite="strict", path=PREFIX)
        return response


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin",
           "cross-origin-resource-policy": "same-origin", "cache-control": "no-store"}


def _harden(response: Response) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def _hardened(send: Send) -> Send:
    """Every response of the view carries the security headers (a strict CSP: scripts and styles from /ui/static
    only, no inline script, no inline handler, nothing from elsewhere)."""
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)
    return wrapped
