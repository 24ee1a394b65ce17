"""The web view's genealogy page on a run of 100,000 programs: time to render in headless Chromium, API size.

    .venv/bin/python bench/ui_tree.py                    # 100,000 programs, limit 1500 (the page's default)
    .venv/bin/python bench/ui_tree.py --programs 20000 --repeat 3

Makes an archive with the project's Archive (schema and migrations), fills one run straight into SQLite (the
way bench/scale.py does: realistic code sizes; parents drawn among the best and the newest programs, so
lineages run deep; 10% failures; two islands with migrations), starts a real `evomcp ui` on it, and prints:

- the tree API's answer (`/ui/api/runs/1/tree`): bytes, and seconds cold (on a first server, without a
  browser: it reads and indexes the run on first use) and warm (the index is kept, updated as the run changes);
- the tree page's time to render in headless Chromium (evomcp.testing.browser, the DevTools protocol on a pipe) on
  a second server: from the start of navigation to the end of drawing the tree (the page records
  `performance.now()`), on the first visit (cold) and the median of `--repeat` later visits (warm);
- the same for the run page's first live render, and the size of its first live answer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import numpy as np

from _common import wait_for_port  # bench/_common.py, next to this script
from evomcp.evaluators.task import resolve_task
from evomcp.store import Archive
from evomcp.testing.browser import Browser, chromium  # CDP over a pipe, standard library only
from evomcp.testing.servers import free_port

COLUMNS = ("id, run_id, parent_id, island, generation, code, code_hash, patch_type, description, status, correct,"
           " combined_score, public_metrics, private_metrics, cost_usd, created_at, evaluated_at")


async def make_archive(db: Path) -> None:
    archive = await Archive.open(db)  # the schema, as a server makes it
    try:
        await archive.create_run("ui bench", "circle_packing_26", "circle_packing_26", {"num_islands": 2}, 2.6359830849)
    finally:
        await archive.close()


def fill(db: Path, n: int) -> float:
    """n programs in run 1; returns seconds taken."""
    rng = np.random.default_rng(0)
    seed_code = resolve_task("circle_packing_26").initial_code
    started = time.perf_counter()
    con = sqlite3.connect(db)
    t0 = time.time() - n * 0.05
    score = np.zeros(n + 1)
    generation = np.zeros(n + 1, np.int64)
    island = np.zeros(n + 1, np.int64)
    rows = []
    for i in range(1, n + 1):
        if i == 1:  # the seed (a member of island 1 too: below)
            parent, gen, isl, s = None, 0, 0, 1.6099131409
        else:
            if rng.random() < 0.5:  # near the top: one of 30 good programs of the recent past
                window = np.arange(max(1, i - 3000), i)
                pick = window[np.argsort(-score[window])[: 30]]
                parent = int(rng.choice(pick))
            else:  # a newer program
                parent = int(rng.integers(max(1, i - 200), i))
            gen, isl = int(generation[parent]) + 1, int(island[parent])
            if rng.random() < 0.01:
                isl = 1 - isl  # moved by a migration
            s = score[parent] + rng.normal(0.0005, 0.004)
        failed = i > 1 and rng.random() < 0.1
        score[i], generation[i], island[i] = (-1.0 if failed else s), gen, isl
        code = seed_code.replace("0.42)]", f"{0.42 + i * 1e-7:.7f})]")
        at = t0 + i * 0.05
        rows.append((i, 1, parent, isl, gen, code, f"h{i}", "full", "perturb: bench", "failed" if failed else
                     "evaluated", 0 if failed else 1, None if failed else float(s), "{}", "{}", 0.0, at, at + 0.02))
        if len(rows) == 20000:
            con.executemany(f"INSERT INTO programs({COLUMNS}) VALUES ({', '.join('?' * 17)})", rows)
            con.commit()
            rows = []
    if rows:
        con.executemany(f"INSERT INTO programs({COLUMNS}) VALUES ({', '.join('?' * 17)})", rows)
    con.execute("INSERT INTO island_members(program_id, island, run_id) VALUES (1, 1, 1)")
    con.commit()
    con.close()
    return time.perf_counter() - started


def page_time(browser: Browser, url: str, ready: str) -> float:
    """Milliseconds from the start of navigation to the page's own mark (body[data-drawn-ms])."""
    browser.send("Page.navigate", url=url)
    browser.wait_for(f"location.href === {json.dumps(url)} && ({ready})", timeout=120, interval=0.02)
    return float(browser.wait_for("document.body.dataset.drawnMs", timeout=120, interval=0.02))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=1500, help="tree nodes the page asks for (its default: 1500)")
    parser.add_argument("--repeat", type=int, default=5, help="warm visits of each page")
    args = parser.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install -y chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="evomcp-ui-bench-"))
    proc = None
    try:
        db = tmp / "bench.db"
        anyio.run(make_archive, db)
        took = fill(db, args.programs)
        print(f"archive: {args.programs} programs in one run, {db.stat().st_size / 1e6:.0f} MB, filled in {took:.1f} s")
        def serve() -> tuple[subprocess.Popen, str]:
            port = free_port()
            server = subprocess.Popen([sys.executable, "-m", "evomcp", "ui", "--db", str(db), "--port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(port, server)
            return server, f"http://127.0.0.1:{port}"

        proc, base = serve()  # a first server: the API's cold answer alone, without a browser
        with httpx.Client(base_url=base, timeout=300) as client:
            started = time.perf_counter()
            client.get(f"/ui/api/runs/1/tree?limit={args.limit}").raise_for_status()
            api_cold = time.perf_counter() - started
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        proc, base = serve()
        tree_url = f"{base}/ui/runs/1/tree?limit={args.limit}"
        with Browser(binary, tmp / "profile", width=1400, height=1000) as browser:
            cold = page_time(browser, tree_url, "document.getElementById('tree').dataset.nodes")
            nodes = int(browser.evaluate("document.getElementById('tree').dataset.nodes"))
            warm = [page_time(browser, tree_url + f"&v={k}", "document.getElementById('tree').dataset.nodes")
                    for k in range(args.repeat)]
            browser.screenshot(tmp / "tree.png", full_page=False)
            run_url = f"{base}/ui/runs/1"
            run_cold = page_time(browser, run_url, "Number(document.body.dataset.updates) >= 1")
            run_warm = [page_time(browser, run_url + f"?v={k}", "Number(document.body.dataset.updates) >= 1")
                        for k in range(args.repeat)]
            problems = browser.problems()
        with httpx.Client(base_url=base, timeout=120) as client:
            timings = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                answer = client.get(f"/ui/api/runs/1/tree?limit={args.limit}")
                timings.append(time.perf_counter() - started)
            live = client.get("/ui/api/runs/1/live")
            started = time.perf_counter()
            client.get("/ui/api/runs/1/live")
            live_s = time.perf_counter() - started
        print(f"tree page ({nodes} of {args.programs} nodes drawn): cold {cold / 1000:.2f} s, warm median "
              f"{statistics.median(warm) / 1000:.2f} s (max {max(warm) / 1000:.2f} s) to render")
        print(f"tree API: {len(answer.content) / 1000:.0f} kB, cold {api_cold:.2f} s (a fresh server reads and "
              f"indexes the run), warm {statistics.median(timings) * 1000:.0f} ms")
        print(f"run page: first live render cold {run_cold / 1000:.2f} s, warm median "
              f"{statistics.median(run_warm) / 1000:.2f} s; first live answer {len(live.content) / 1000:.0f} kB, "
              f"{live_s * 1000:.0f} ms warm")
        if problems:
            print("page problems:", problems)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
