"""The web view's routes (Starlette), all under /ui and all read-only (GET): pages, the JSON API, static files.

    /ui/                                   runs                 /ui/api/runs
    /ui/runs/{run}                         a run, live          /ui/api/runs/{run}/live?cursor=...
    /ui/runs/{run}/tree?root=&limit=&from= the genealogy     /ui/api/runs/{run}/tree?root=&limit=&from=
    /ui/runs/{run}/programs/{id}           a program            /ui/runs/{run}/programs/{id}/drawing.svg
    /ui/runs/{run}/diff?a=&b=[&context=all] a diff of two programs
    /ui/static/app.js, app.css, icon.svg   the script, the styles and the icon (shipped in the wheel)
"""

from __future__ import annotations

import logging
from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ...tools import genealogy, program_view, watch
from ...tools.watch import NotFound, StorageError
from . import pages
from .session import PREFIX

log = logging.getLogger("evomcp.web")
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "icon.svg": "image/svg+xml"}
DEFAULT_LIMIT = 1500


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise NotFound(f"{name}={text!r} is not a number") from None


def build(ws) -> Starlette:
    """The routes over a read-only workspace (`open_workspace(db, reset=False)`)."""

    def handler(render, json_api: bool = False):
        async def endpoint(request: Request) -> Response:
            try:
                return await render(request)
            except NotFound as exc:
                status, message = 404, str(exc)
            except StorageError as exc:
                log.warning("web view: %s", exc)
                status, message = 503, str(exc)
            if json_api:
                return JSONResponse({"error": message}, status_code=status)
            return HTMLResponse(pages.error_page(status, message), status_code=status)
        return endpoint

    def run_id(request: Request) -> int:
        return request.path_params["run"]

    async def runs_page(request: Request) -> Response:
        return HTMLResponse(pages.runs_page())

    async def run_page(request: Request) -> Response:
        return HTMLResponse(pages.run_page(await watch.run_record(ws, run_id(request))))

    async def tree_page(request: Request) -> Response:
        run = await watch.run_record(ws, run_id(request))
        return HTMLResponse(pages.tree_page(run, _int(request, "root"), _int(request, "limit", DEFAULT_LIMIT),
                                            _int(request, "from")))

    async def program_page(request: Request) -> Response:
        view = await program_view.program_page(ws, run_id(request), request.path_params["program"])
        diff = program_view.diff_lines(view.parent.code, view.program.code) if view.parent else None
        return HTMLResponse(pages.program_page(view, diff))

    async def drawing(request: Request) -> Response:
        run = await watch.run_record(ws, run_id(request))
        program = await watch.program_record(ws, run.id, request.path_params["program"])
        svg = pages.drawing_svg(run, program)
        if svg is None:
            raise NotFound(f"program {program.id} has no drawing")
        return Response(svg, media_type="image/svg+xml")

    async def diff_page(request: Request) -> Response:
        a, b = _int(request, "a"), _int(request, "b")
        if a is None or b is None:
            raise NotFound("a diff needs two programs: ?a=ID&b=ID")
        run, first, second = await program_view.diff_pair(ws, run_id(request), a, b)
        whole = request.query_params.get("context") == "all"
        lines = program_view.diff_lines(first.code, second.code, None if whole else 3)
        return HTMLResponse(pages.diff_page(run, first, second, lines, whole))

    async def api_runs(request: Request) -> Response:
        return JSONResponse({"runs": await watch.runs_list(ws)})

    drawable: dict[int, bool] = {}  # per program: a program's metrics never change once set

    async def api_live(request: Request) -> Response:
        live = await watch.live(ws, run_id(request), request.query_params.get("cursor"))
        best = live["state"]["best"]
        if best is not None:  # whether the page can show the best program's drawing
            if best["id"] not in drawable:
                run = await watch.run_record(ws, run_id(request))
                drawable[best["id"]] = pages.has_drawing(run, await watch.program_record(ws, run.id, best["id"]))
            best["drawing"] = drawable[best["id"]]
        return JSONResponse(live)

    async def api_tree(request: Request) -> Response:
        return JSONResponse(await genealogy.genealogy(ws, run_id(request), _int(request, "root"),
                                                      _int(request, "limit", DEFAULT_LIMIT), _int(request, "from")))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("no such file", status_code=404, media_type="text/plain")
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name])

    routes = [
        Route(f"{PREFIX}/", handler(runs_page)),
        Route(f"{PREFIX}/runs/{{run:int}}", handler(run_page)),
        Route(f"{PREFIX}/runs/{{run:int}}/tree", handler(tree_page)),
        Route(f"{PREFIX}/runs/{{run:int}}/programs/{{program:int}}", handler(program_page)),
        Route(f"{PREFIX}/runs/{{run:int}}/programs/{{program:int}}/drawing.svg", handler(drawing)),
        Route(f"{PREFIX}/runs/{{run:int}}/diff", handler(diff_page)),
        Route(f"{PREFIX}/api/runs", handler(api_runs, True)),
        Route(f"{PREFIX}/api/runs/{{run:int}}/live", handler(api_live, True)),
        Route(f"{PREFIX}/api/runs/{{run:int}}/tree", handler(api_tree, True)),
        Route(f"{PREFIX}/static/{{name}}", static),
    ]
    return Starlette(routes=routes)
