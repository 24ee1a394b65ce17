"""The archive at scale: a run of 100,000 (or 1,000,000) programs, measured through the tool functions.

    .venv/bin/python bench/scale.py --programs 100000 [--calls 200]
    .venv/bin/python bench/scale.py --programs 1000000 --calls 100

Fills one run directly in SQLite (realistic code sizes, 256-d float32 embeddings, scores, two
islands, a 1,000-deep lineage chain), then opens it like a server does and prints p50/p99 latency
of sample_parent per strategy, the novelty check, propose_candidate without evaluation, get_archive
(first and a deep page by score, the newest and oldest pages, an island's page), get_lineage of the
deep chain and get_run_status, plus insert throughput, cold start (open to first answer), resident
memory and database size.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import shutil
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

from _common import rss_mb  # bench/_common.py, next to this script
from evomcp.evaluators.task import resolve_task
from evomcp.store import Archive
from evomcp.tools import canonical, novelty, runs, steps, views
from evomcp.tools.models import RunConfig
from evomcp.tools.workspace import open_workspace

CHAIN = 1000


def fill(db: Path, n: int, seed_code: str) -> float:
    """Insert n programs in one run, straight into SQLite; returns programs per second."""
    rng = np.random.default_rng(0)
    con = sqlite3.connect(db)
    config = RunConfig(num_islands=2, novelty=True).model_dump_json()
    con.execute("INSERT INTO runs(id, name, task, task_path, config, status, target_score, created_at, updated_at)"
                " VALUES (1, 'scale', 'circle_packing_26', 'circle_packing_26', ?, 'running', 2.6359830849, ?, ?)",
                (config, time.time(), time.time()))
    started = time.perf_counter()
    batch = []
    base = seed_code
    for i in range(1, n + 1):
        parent = None if i == 1 else (i - 1 if i <= CHAIN else int(rng.integers(1, i)))  # 1: the seed
        island = 0 if i == 1 else (1 if i <= CHAIN else int(rng.integers(0, 2)))
        code = base.replace("0.42)]", f"{0.42 + i * 1e-7:.7f})]")  # ~2 KB of code each
        vector = rng.standard_normal(novelty.DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        ok = rng.random() > 0.1
        score = float(1.6 + rng.random()) if ok else None
        batch.append((i, 1, parent, island, 0 if i == 1 else (i if i <= CHAIN else 5), code, f"h{i}", None, "full",
                      None, "evaluated" if ok else "failed", int(ok), score, "{}", "{}", vector.tobytes(),
                      time.time()))
        if len(batch) == 20000:
            con.executemany(INSERT, batch)
            con.commit()
            batch = []
    if batch:
        con.executemany(INSERT, batch)
    con.execute("INSERT INTO island_members(program_id, island, run_id) VALUES (1, 1, 1)")  # the seed, on both
    con.commit()
    rate = n / (time.perf_counter() - started)
    con.close()
    return rate


INSERT = ("INSERT INTO programs(id, run_id, parent_id, island, generation, code, code_hash, diff, patch_type,"
          " description, status, correct, combined_score, public_metrics, private_metrics, embedding, created_at)"
          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


async def timed(label, fn, calls, results):
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    ms = np.array(samples)
    results.append((label, np.percentile(ms, 50), np.percentile(ms, 99)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="evomcp-scale-"))
    try:
        await measure(folder / "scale.db", args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the database, its -wal and -shm: up to 4 GB


async def measure(db: Path, args: argparse.Namespace) -> None:
    archive = await Archive.open(db)  # creates the schema
    await archive.close()
    seed_code = resolve_task("circle_packing_26").initial_code
    rate = fill(db, args.programs, seed_code)
    size_mb = sum(p.stat().st_size for p in db.parent.glob("scale.db*")) / 1e6
    rss_before = rss_mb()
    started = time.perf_counter()
    async with open_workspace(db, slots=2) as ws:
        await runs.get_run_status(ws, 1)
        cold = time.perf_counter() - started
        results: list[tuple[str, float, float]] = []
        deep_cursor = None
        page = await views.get_archive(ws, 1, limit=200)
        for _ in range(50):  # walk 50 pages in to get a deep cursor
            page = await views.get_archive(ws, 1, limit=200, cursor=page.next_cursor)
        deep_cursor = page.next_cursor
        rng = random.Random(0)

        async def sample(strategy):
            ticket = await steps.sample_parent(ws, 1, strategy=strategy)
            ws.tickets.redeem(ticket.ticket, 1, ticket.parent.id)

        await sample("uniform")  # the first one measures the sandbox once (tools/sandbox_facts.py): not timed
        for strategy in ("weighted", "power_law", "uniform", "hill_climbing", "beam"):
            await timed(f"sample_parent ({strategy})", lambda s=strategy: sample(s), args.calls, results)
        async def check():  # what propose_candidate does: the canonical form's hash, looked up in the run
            await ws.archive.find_by_fingerprint(1, canonical.fingerprint(seed_code))

        await timed("novelty check (canonical fingerprint)", check, args.calls, results)
        parent = await ws.program(1, args.programs)
        counter = iter(range(10**9))

        async def propose():
            k = next(counter)
            code = parent.code.replace("# EVOLVE-BLOCK-END", f"marker_{k} = {k}\n# EVOLVE-BLOCK-END")
            # the novelty check is timed on its own above; exempt here so near-copies are not refused
            await steps.propose_candidate(ws, 1, parent.id, code=code, evaluate_now=False, operator="perturb")

        await timed("propose_candidate (no evaluation)", propose, args.calls, results)
        await timed("get_archive first page", lambda: views.get_archive(ws, 1, limit=50), args.calls, results)
        await timed("get_archive deep page", lambda: views.get_archive(ws, 1, limit=50, cursor=deep_cursor),
                    args.calls, results)
        for order in ("newest", "oldest"):
            await timed(f"get_archive {order} first page", lambda order=order: views.get_archive(
                ws, 1, limit=50, order=order), args.calls, results)
        await timed("get_archive island 0 by score", lambda: views.get_archive(ws, 1, limit=50, island=0),
                    args.calls, results)
        await timed(f"get_lineage ({CHAIN} deep)", lambda: views.get_lineage(ws, 1, CHAIN), args.calls // 4 or 1,
                    results)
        await timed("get_run_status", lambda: runs.get_run_status(ws, 1), args.calls, results)
        rss_after = rss_mb()
    print(f"programs {args.programs:,}; insert {rate:,.0f}/s; database {size_mb:,.0f} MB; "
          f"cold start {cold:.2f} s; RSS {rss_before:.0f} -> {rss_after:.0f} MB")
    print(f"{'operation':36} {'p50 ms':>8} {'p99 ms':>8}")
    for label, p50, p99 in results:
        print(f"{label:36} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    anyio.run(main)
