"""The web view (evomcp.server.web) over real HTTP and in a real browser.

A real `evomcp serve --http` (token required) evolves a circle-packing run with its built-in driver (the offline
perturb operator) while headless Chromium, driven over the DevTools protocol (evomcp.testing.browser), signs in with
the printed login link, watches the run page take new best scores without a reload, opens a program from the
genealogy tree and reads a diff. Screenshots go to $EVOMCP_SCREENSHOTS, else to a pytest temporary folder
(printed). `evomcp ui` is tested on an archive holding hostile text. The genealogy's aggregation, the live
cursor and the diff are checked on real archives too.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from evomcp.store import Archive, EvaluationResult, readers
from evomcp.testing.browser import Browser, chromium
from evomcp.testing.servers import free_port, wait_for_port
from evomcp.tools import genealogy, program_view, scan_cache, watch
from evomcp.tools.genealogy import Genealogy
from evomcp.tools.population import Population
from evomcp.tools.workspace import open_workspace
from test_transports import authed

ROUTES = ["/ui", "/ui/", "/ui/runs/1", "/ui/runs/1/tree", "/ui/runs/1/tree?root=1&limit=10", "/ui/runs/1/programs/1",
          "/ui/runs/1/programs/1/drawing.svg", "/ui/runs/1/diff?a=1&b=1", "/ui/api/runs", "/ui/api/runs/1/live",
          "/ui/api/runs/1/tree", "/ui/static/app.js", "/ui/static/app.css", "/ui/static/icon.svg"]
browser_binary = chromium()
needs_browser = pytest.mark.skipif(browser_binary is None,
                                   reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ["EVOMCP_SCREENSHOTS"]) if os.environ.get("EVOMCP_SCREENSHOTS") else \
        tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the web view: {folder}")
    return folder


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return value


def query(db: Path, sql: str, *args):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """`evomcp serve --http` with a token, and a run its driver evolves while the tests look."""
    tmp = tmp_path_factory.mktemp("web")
    db, log = tmp / "live.db", tmp / "server.log"
    port = free_port()
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db",
                                 str(db)], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "EVOMCP_TOKEN": "", "EVOMCP_LOG_LEVEL": "WARNING"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc, timeout=60)
        line = wait_until(lambda: re.search(r"watch the runs in a browser: (\S+)", log.read_text()), 30,
                          "the login link")
        link = line.group(1)
        token = re.search(r"Authorization: Bearer (\S+)'", log.read_text()).group(1)  # generated, printed

        async def start() -> int:
            async with Client(authed(f"{base}/mcp", token)) as client:
                result = await client.call_tool("start_run", {
                    "task": "circle_packing_26", "config": {"novelty": False},
                    "driver": {"max_evaluations": 20000, "concurrency": 1, "max_idle_steps": 1000}})
            assert not result.is_error, result.content[0].text
            return result.structured_content["run"]["run_id"]
        run_id = anyio.run(start)
        yield {"base": base, "link": link, "token": token, "run": run_id, "db": db, "tmp": tmp}
    finally:
        async def stop() -> None:
            async with Client(authed(f"{base}/mcp", token)) as client:
                await client.call_tool("stop_run", {"run_id": 1})
        if proc.poll() is None:
            try:
                anyio.run(stop)
            except Exception:  # the server may be gone already; SIGTERM below ends it either way
                pass
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def signed_in(base: str, token: str):
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        response = client.get("/ui/login", params={"token": token})
        assert response.status_code == 303, response.text
        yield client


def test_the_login_link_is_printed_and_no_page_is_served_without_its_cookie(live):
    base, token = live["base"], live["token"]
    assert live["link"] == f"{base}/ui/login?token={token}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as anonymous:
        for route in ROUTES:
            for cookie in ({}, {"Cookie": "evomcp_ui=forged"}, {"Cookie": f"evomcp_ui={token}"}):
                response = anonymous.get(route, headers=cookie)
                assert response.status_code == 401, (route, cookie, response.status_code)
                assert "login link" in response.text and "<" not in response.text
        for wrong in ("", "wrong", token + "x", token[:-1]):
            response = anonymous.get("/ui/login", params={"token": wrong})
            assert response.status_code == 403 and "set-cookie" not in response.headers, wrong
        assert anonymous.get("/ui/login").status_code == 403

    with signed_in(base, token) as client:
        login = client.get("/ui/login", params={"token": token})
        assert login.headers["location"] == "/ui/"  # the token leaves the address bar at once
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/ui" in cookie
        assert token not in cookie
        for route in ROUTES:
            response = client.get(route)
            assert response.status_code in (200, 307), (route, response.status_code, response.text[:300])
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/ui/runs/1/programs/999999").status_code == 404
        assert client.get("/ui/api/runs/77/live").status_code == 404
        assert client.post("/ui/api/runs").status_code == 405  # read-only: nothing but GET
        assert client.get("/ui/", headers={"Host": "evil.example"}).status_code == 421  # DNS rebinding
        # the MCP endpoint keeps its bearer check: the view's cookie opens nothing there
        mcp = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers={"Accept": "application/json, text/event-stream"})
        assert mcp.status_code == 401


@needs_browser
def test_the_run_page_takes_new_best_scores_without_a_reload(live, shots):
    base, run_id, db = live["base"], live["run"], live["db"]
    with Browser(browser_binary, live["tmp"] / "profile-live") as browser:
        browser.goto(live["link"])
        assert browser.wait_for("location.pathname === '/ui/' && location.href") == f"{base}/ui/"  # no token left
        browser.wait_for(f"!!document.querySelector('#runs a[href=\"/ui/runs/{run_id}\"]')")
        browser.wait_for("document.querySelector('#runs tbody td') && "
                         "document.querySelector('#runs tbody').textContent.includes('trusted')")
        browser.screenshot(shots / "runs.png")

        browser.goto(f"{base}/ui/runs/{run_id}")
        first = browser.wait_for("document.body.dataset.best", timeout=60)
        origin = browser.evaluate("performance.timeOrigin")
        updates = int(browser.evaluate("document.body.dataset.updates"))
        browser.screenshot(shots / "run-before.png")
        later = browser.wait_for(f"document.body.dataset.best !== {json.dumps(first)} && document.body.dataset.best",
                                 timeout=120)
        assert float(later) > float(first)
        assert browser.evaluate("performance.timeOrigin") == origin, "the page was reloaded"
        assert int(browser.evaluate("document.body.dataset.updates")) > updates
        assert not browser.evaluate("document.body.dataset.error")
        shown = browser.evaluate("document.getElementById('best-score').textContent")
        best = query(db, "SELECT MAX(combined_score) FROM programs WHERE run_id = ? AND correct = 1", run_id)[0][0]
        assert float(later) <= float(shown) <= best  # what the page shows is the archive's, at full precision
        assert repr(float(shown)) == shown
        assert int(browser.evaluate("document.getElementById('chart-evals').dataset.steps")) >= 2
        # the new best's drawing is fetched after its score shows: wait for it to load, then check it decoded
        assert browser.wait_for("(img => img && img.complete && img.naturalWidth)"
                                "(document.querySelector('#best-drawing img'))", timeout=30) > 0
        browser.screenshot(shots / "run-after.png")
        assert browser.problems() == []


@needs_browser
def test_the_tree_opens_a_program(live, shots):
    base, run_id, db = live["base"], live["run"], live["db"]
    wait_until(lambda: query(db, "SELECT COUNT(*) FROM programs WHERE run_id = ? AND generation >= 2", run_id)[0][0],
               120, "a grandchild of the seed")
    with Browser(browser_binary, live["tmp"] / "profile-tree") as browser:
        browser.goto(live["link"])
        browser.wait_for("location.pathname === '/ui/'")
        browser.goto(f"{base}/ui/runs/{run_id}/tree")
        browser.wait_for("document.getElementById('tree').dataset.nodes", timeout=30)
        assert browser.evaluate("document.querySelectorAll('#tree a.program').length") >= 3
        best = int(browser.wait_for("document.querySelector('#tree circle.best') && "
                                    "document.querySelector('#tree circle.best').parentNode.dataset.id"))
        browser.screenshot(shots / "tree.png")
        browser.click("#tree circle.best")
        path = browser.wait_for(f"location.pathname === '/ui/runs/{run_id}/programs/{best}' && location.pathname")
        assert path.endswith(f"/programs/{best}")
        browser.wait_for("document.readyState === 'complete' && !!document.getElementById('code')")
        assert browser.evaluate("document.querySelector('h1').textContent").startswith(f"Program #{best}")
        code = query(db, "SELECT code FROM programs WHERE id = ?", best)[0][0]
        lines = browser.evaluate("[...document.querySelectorAll('#code li')].map(li => li.textContent)")
        assert [line.rstrip() for line in lines] == [line.rstrip() for line in code.splitlines()]
        assert browser.evaluate("document.querySelectorAll('#code li.marker').length") == 2  # START and END
        assert browser.evaluate("document.querySelectorAll('#code li.evolve').length") > 3
        browser.screenshot(shots / "program.png")
        assert browser.problems() == []


@needs_browser
def test_the_diff_view_shows_the_parents_and_the_childs_lines(live, shots):
    base, run_id, db = live["base"], live["run"], live["db"]
    child, parent = wait_until(lambda: query(
        db, "SELECT c.id, p.id FROM programs c JOIN programs p ON p.id = c.parent_id WHERE c.run_id = ? AND "
            "c.code != p.code ORDER BY c.id LIMIT 1", run_id), 120, "a child")[0]
    old, new = (query(db, "SELECT code FROM programs WHERE id = ?", i)[0][0] for i in (parent, child))
    delta = list(difflib.ndiff(old.splitlines(), new.splitlines()))
    removed = [line[2:] for line in delta if line.startswith("- ")]  # the parent's lines the child changed
    added = [line[2:] for line in delta if line.startswith("+ ")]  # the child's lines in their place
    assert removed and added
    with Browser(browser_binary, live["tmp"] / "profile-diff") as browser:
        browser.goto(live["link"])
        browser.wait_for("location.pathname === '/ui/'")
        for url, name in ((f"{base}/ui/runs/{run_id}/diff?a={parent}&b={child}", "diff.png"),
                          (f"{base}/ui/runs/{run_id}/programs/{child}", "program-diff.png")):
            browser.goto(url)
            dels = browser.evaluate("[...document.querySelectorAll('#diff tr.del td.t')].map(e => e.textContent)")
            adds = browser.evaluate("[...document.querySelectorAll('#diff tr.add td.t')].map(e => e.textContent)")
            assert dels == removed, url
            assert adds == added, url
            numbers = browser.evaluate("[...document.querySelectorAll('#diff tr.del td.n')].map(e => e.textContent)")
            assert numbers[0] == str(old.splitlines().index(removed[0]) + 1)  # the parent's line numbers
            browser.screenshot(shots / name)
        assert browser.problems() == []


# ---------------------------------------------------------------- `evomcp ui` on an archive with hostile text

HOSTILE = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


async def hostile_archive(db: Path) -> tuple[int, int]:
    archive = await Archive.open(db)
    try:
        run = await archive.create_run("hostile <b>run</b>", "circle_packing_26", "circle_packing_26", {}, 2.6)
        seed = await archive.insert_program(
            run_id=run.id, parent_id=None, island=0, generation=0, code="# EVOLVE-BLOCK-START\nx = 1\n"
            "# EVOLVE-BLOCK-END\n", code_hash="a", diff=None, patch_type="seed", description="seed")
        await archive.save_result(seed.id, EvaluationResult(status="evaluated", correct=True, combined_score=1.5))
        child = await archive.insert_program(
            run_id=run.id, parent_id=seed.id, island=0, generation=1,
            code=f"# EVOLVE-BLOCK-START\nx = '{HOSTILE}'\n# EVOLVE-BLOCK-END\n", code_hash="b", diff=None,
            patch_type="full", description=HOSTILE, operator=HOSTILE)
        await archive.save_result(child.id, EvaluationResult(
            status="failed", correct=False, combined_score=None, error=HOSTILE, text_feedback=HOSTILE,
            stdout_tail=HOSTILE, public_metrics={HOSTILE: HOSTILE}))
        await archive.add_event(run.id, "proposed", {"program": child.id, "parent": seed.id, "operator": HOSTILE})
        running = await archive.insert_program(
            run_id=run.id, parent_id=seed.id, island=0, generation=1, code="x = 2\n", code_hash="c", diff=None,
            patch_type="full", description="being evaluated by another process")
        await archive.set_program_status(running.id, "running")
        return child.id, running.id
    finally:
        await archive.close()


@pytest.fixture
def ui_server(tmp_path):
    db = tmp_path / "hostile.db"
    child, running = anyio.run(hostile_archive, db)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "ui", "--db", str(db), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        yield {"base": f"http://127.0.0.1:{port}", "db": db, "child": child, "running": running, "tmp": tmp_path,
               "proc": proc}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_evomcp_ui_serves_loopback_without_a_token_and_changes_nothing(ui_server):
    base, db = ui_server["base"], ui_server["db"]
    with httpx.Client(base_url=base, timeout=30) as client:
        for route in ROUTES:  # no token asked; the seed here has no solution to draw
            expected = 404 if route.endswith("drawing.svg") else 200
            assert client.get(route, follow_redirects=True).status_code == expected, route
        assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
        assert client.get("/ui/", headers={"Host": "evil.example:80"}).status_code == 421
        page = client.get(f"/ui/runs/1/programs/{ui_server['child']}").text
        assert HOSTILE not in page and "&lt;/script&gt;&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
        runs = client.get("/ui/api/runs").json()["runs"]
        assert runs[0]["name"] == "hostile <b>run</b>" and runs[0]["in_flight"] == 1
    # read-only: the program another process is evaluating is still `running` (a writer would reset it)
    assert query(db, "SELECT status FROM programs WHERE id = ?", ui_server["running"]) == [("running",)]


@needs_browser
def test_hostile_text_is_shown_as_text(ui_server, shots):
    base, child = ui_server["base"], ui_server["child"]
    with Browser(browser_binary, ui_server["tmp"] / "profile") as browser:
        for url in (f"{base}/ui/runs/1/programs/{child}", f"{base}/ui/runs/1", f"{base}/ui/runs/1/tree",
                    f"{base}/ui/", f"{base}/ui/runs/1/diff?a=1&b={child}"):
            browser.goto(url)
            if "/programs/" not in url and "diff" not in url:
                browser.wait_for("Number(document.body.dataset.updates) >= 1")
            assert browser.evaluate("window.pwned === undefined"), url
            assert browser.evaluate("document.querySelectorAll('main img[src=x], main script').length") == 0, url
        browser.goto(f"{base}/ui/runs/1/programs/{child}")
        texts = browser.evaluate("[...document.querySelectorAll('pre')].map(p => p.textContent)")
        assert texts.count(HOSTILE) >= 3  # the error, the feedback and the output, as text
        browser.screenshot(shots / "hostile-program.png")
        assert browser.problems() == []


def test_a_token_given_by_the_user_is_not_echoed_in_the_login_link(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evomcp", "serve", "--http", "--port", str(port), "--db",
                             str(tmp_path / "t.db"), "--token", "kept-out-of-logs-123"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"})
    try:
        wait_for_port(port, proc)
        line = proc.stderr.readline().decode()
        assert f"http://127.0.0.1:{port}/ui/login?token=TOKEN" in line and "kept-out-of-logs" not in line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            signed = client.get("/ui/login", params={"token": "kept-out-of-logs-123"}, follow_redirects=True)
            assert signed.status_code == 200 and str(signed.url).endswith("/ui/")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_evomcp_ui_refuses_a_non_loopback_address(tmp_path):
    anyio.run(hostile_archive, tmp_path / "a.db")
    out = subprocess.run([sys.executable, "-m", "evomcp", "ui", "--db", str(tmp_path / "a.db"), "--host", "0.0.0.0",
                          "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "serves this machine only" in out.stderr and "serve --http" in out.stderr
    missing = subprocess.run([sys.executable, "-m", "evomcp", "ui", "--db", str(tmp_path / "none.db"), "--port",
                              str(free_port())], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no archive at" in missing.stderr


# ---------------------------------------------------------------- the data behind the pages, on real archives


async def grow(archive: Archive, run_id: int, n: int, seed_score: float = 1.0) -> list[int]:
    """A seed and `n` descendants, each the child of an earlier program (ids deterministic), some failed."""
    ids: list[int] = []
    gen: dict[int, int] = {}
    for k in range(n + 1):  # every other one extends a long lineage (the spine), the rest branch off anywhere
        parent = None if k == 0 else ids[-2] if k % 2 == 0 and k > 1 else ids[(k * 7919) % len(ids)]
        generation = 0 if parent is None else gen[parent] + 1
        program = await archive.insert_program(run_id=run_id, parent_id=parent, island=k % 2 if parent else 0,
                                               generation=generation, code=f"x = {k}\n", code_hash=f"h{k}",
                                               diff=None, patch_type="full", description=None)
        failed = k % 11 == 5
        score = None if failed else seed_score + ((k * 37) % 101) / 1000
        await archive.save_result(program.id, EvaluationResult(status="failed" if failed else "evaluated",
                                                                correct=not failed, combined_score=score))
        ids.append(program.id)
        gen[program.id] = generation
    return ids


async def test_the_genealogy_is_aggregated_and_stays_connected(tmp_path):
    archive = await Archive.open(tmp_path / "g.db")
    try:
        run = await archive.create_run("g", "circle_packing_26", "circle_packing_26", {}, None)
        ids = await grow(archive, run.id, 400)
        await archive.move_programs(run.id, [(ids[50], 50 % 2, 1 - (50 % 2))])  # a migration
        rows = await readers.tree_rows(archive, run.id)
        tree = Genealogy.from_rows(rows)
        whole = tree.view(None, 5000)
        assert whole["shown"] == whole["total"] == 401 and sum(whole["hidden"]) == 0 and whole["window"] is None
        by_id = {r[0]: r for r in rows}
        low, high = whole["generations"]
        assert high - low + 1 > 60  # deeper than one window
        for limit, first in ((40, None), (120, None), (120, 0), (300, 30)):
            view = tree.view(None, limit, first)
            top, bottom = view["window"]
            span = view["span"]
            assert (top, bottom) == ((high - span + 1, high) if first is None else (first, first + span - 1))
            shown = set(view["ids"])
            assert 0 < view["shown"] <= limit and view["in_scope"] == 401
            for i, parent in enumerate(view["parent"]):  # a shown node hangs from its shown parent, or starts
                node = by_id[view["ids"][i]]            # the window, its parent marked as above it
                assert top <= node[3] <= bottom
                if parent >= 0:
                    assert node[1] == view["ids"][parent]
                else:
                    assert view["cut"][i] == (node[1] != -1) and (node[1] == -1 or node[3] == top)
            window = [r for r in rows if top <= r[3] <= bottom]
            best = max((r for r in window if r[4] == 2), key=lambda r: (r[5], -r[0]))[0]
            assert best in shown  # the window's best, with its lineage up to the window's start
            node = best
            while node != -1 and by_id[node][3] >= top:
                assert node in shown
                node = by_id[node][1]
            newest = max(r[0] for r in window)
            assert newest in shown  # and its newest program
            for i, left_out in enumerate(view["hidden"]):  # a collapsed node says the best score it hides
                assert (view["hidden_best"][i] is not None) <= (left_out > 0)
        moved = whole["ids"].index(ids[50])
        assert whole["migrated"][moved] == 1 and sum(whole["migrated"]) == 1  # the one moved, not its kin
        sub = tree.view(ids[1], 5000)  # opening a node shows its subtree only
        assert sub["root"] == ids[1] and sub["parent"][0] == -1 and sub["in_scope"] == sub["shown"] < 401
        with pytest.raises(KeyError):
            tree.view(10**9)
    finally:
        await archive.close()


async def test_live_answers_only_what_is_new_after_the_cursor(tmp_path):
    db = tmp_path / "l.db"
    archive = await Archive.open(db)
    run = await archive.create_run("l", "circle_packing_26", "circle_packing_26", {}, 2.0)
    ids = await grow(archive, run.id, 20)
    await archive.join_islands(run.id, ids[0], [1])  # the seed on a second island: the same program, counted once
    async with open_workspace(db, reset=False) as ws:
        first = await watch.live(ws, run.id)
        assert first["reset"] and len(first["points"]) == 21 and first["points"][-1][0] == 21
        assert [p[2] for p in first["steps"]] == sorted(p[2] for p in first["steps"])  # the best so far rises
        assert first["state"]["best"]["score"] == max(p[2] for p in first["points"] if p[2] is not None)
        again = await watch.live(ws, run.id, first["cursor"])
        assert again["points"] == [] and not again["reset"] and again["cursor"] == first["cursor"]
        await grow_more(archive, run.id)
        later = await watch.live(ws, run.id, first["cursor"])
        assert [p[0] for p in later["points"]] == [22, 23] and later["points"][0][2] == 9.5
        assert later["state"]["best"]["score"] == 9.5 and later["state"]["candidates"] == 22
        restart = await watch.live(ws, run.id, "nonsense")
        assert restart["reset"] and len(restart["points"]) == 23
        # the counts the page shows are the project's: as the archive and the run's population count them
        population = Population.from_rows(await archive.population_rows(run.id), await archive.memberships(run.id))
        assert restart["state"]["counts"] == await archive.counts_by_status(run.id) == population.counts()
        assert restart["state"]["candidates"] == population.candidates_evaluated() == 22
    await archive.close()


async def grow_more(archive: Archive, run_id: int) -> None:
    for k, score in enumerate((9.5, None)):
        program = await archive.insert_program(run_id=run_id, parent_id=1, island=0, generation=1,
                                               code=f"y = {k}\n", code_hash=f"m{k}", diff=None, patch_type="full",
                                               description=None)
        await archive.save_result(program.id, EvaluationResult(status="evaluated" if score else "failed",
                                                                correct=score is not None, combined_score=score))


def test_diff_lines_number_both_sides_and_say_what_they_leave_out():
    a = "".join(f"line {i}\n" for i in range(1, 31))
    b = a.replace("line 3\n", "line three\n").replace("line 25\n", "")
    lines = program_view.diff_lines(a, b)
    kinds = [line.kind for line in lines]
    assert kinds.count("del") == 2 and kinds.count("add") == 1 and kinds.count("gap") == 2
    assert [(line.a, line.text) for line in lines if line.kind == "del"] == [(3, "line 3"), (25, "line 25")]
    assert [(line.b, line.text) for line in lines if line.kind == "add"] == [(3, "line three")]
    assert lines[-1].kind == "gap" and lines[-1].text == "2 unchanged lines"
    whole = program_view.diff_lines(a, b, None)
    assert sum(1 for line in whole if line.kind == "same") == 28 and "gap" not in [x.kind for x in whole]
    assert program_view.diff_lines(a, a) == []


async def test_a_live_runs_genealogy_is_read_again_in_pieces_and_matches_a_fresh_reading(tmp_path, monkeypatch):
    """After new programs, finished evaluations and a migration, the cached genealogy updated from what changed
    draws the same tree as one read whole."""
    monkeypatch.setattr(scan_cache, "SLOW_EVERY", 0.0)  # recompute on every change (the server waits 0.5 s at least,
    monkeypatch.setattr(scan_cache, "SLOW_FACTOR", 0)  # and ten times what the last reading took)
    db = tmp_path / "i.db"
    archive = await Archive.open(db)
    run = await archive.create_run("i", "circle_packing_26", "circle_packing_26", {}, None)
    ids = await grow(archive, run.id, 60)
    pending = await archive.insert_program(run_id=run.id, parent_id=ids[3], island=1, generation=2, code="p\n",
                                           code_hash="p", diff=None, patch_type="full", description=None)
    await archive.join_islands(run.id, ids[0], [1, 2])  # the seed, on three islands
    async with open_workspace(db, reset=False) as ws:
        before = await genealogy.genealogy(ws, run.id, None, 5000)
        assert before["status"][before["ids"].index(pending.id)] == 0  # waiting
        await archive.save_result(pending.id, EvaluationResult(status="evaluated", correct=True, combined_score=7.0))
        await grow_more(archive, run.id)
        await archive.move_programs(run.id, [(ids[10], 0, 1), (ids[11], 1, 0), (ids[0], 1, 2)])
        await archive.add_event(run.id, "migration", {"moved": {"1": [ids[10]], "0": [ids[11]], "2": [ids[0]]},
                                                      "at_evaluation": 60})
        after = await genealogy.genealogy(ws, run.id, None, 5000)
        fresh = Genealogy.from_rows(await readers.tree_rows(archive, run.id)).view(None, 5000)
        for key in ("ids", "parent", "island", "status", "score", "row", "migrated", "hidden"):
            assert after[key] == fresh[key], key
        assert after["total"] == before["total"] + 2 and after["score_range"][1] == 9.5
        at = after["ids"].index(pending.id)
        assert (after["status"][at], after["score"][at]) == (2, 7.0)  # finished since the first reading
        assert after["island"][after["ids"].index(ids[10])] == 1 and after["island"][after["ids"].index(ids[11])] == 0
        assert after["migrated"][after["ids"].index(ids[10])] == 1
        assert after["island"][after["ids"].index(ids[0])] == 0  # still on island 0 (and now 2): shown on its lowest
    await archive.close()
