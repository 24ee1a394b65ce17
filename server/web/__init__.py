"""The web view of runs: pages and a JSON API under /ui, served by `evomcp serve --http` (beside /mcp, behind
a login link that sets a cookie) and by `evomcp ui` (loopback only, no token). Read-only throughout.

    pages.py    HTML (escaped; the live pages are shells the script fills)
    routes.py   the Starlette routes: pages, /ui/api, /ui/static
    session.py  the login link, the cookie, the Host check and the security headers (a strict CSP)
    static/     app.js (hand-written, no dependencies) and app.css

What the pages show is read through a read-only workspace by the tools' views: tools/watch.py (the runs, a run's
live state), tools/genealogy.py (the genealogy, chosen and laid out), tools/program_view.py (a program, a diff).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .routes import build
from .session import LOGIN, PREFIX, Sessions, login_url

__all__ = ["LOGIN", "PREFIX", "login_url", "web_app", "beside"]


def web_app(ws, token: str | None, hosts: list[str] | None) -> ASGIApp:
    """The view over a read-only workspace; with a token, only for a browser that opened the login link."""
    return Sessions(build(ws), token, hosts)


def beside(app: ASGIApp, web: ASGIApp) -> ASGIApp:
    """`app` (the MCP server's) with the view answering /ui and everything under it; the rest (/mcp with its
    bearer check, the lifespan) stays `app`'s."""
    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            await web(scope, receive, send)
        else:
            await app(scope, receive, send)
    return dispatch
