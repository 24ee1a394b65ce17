"""Many agents over streamable HTTP plus the built-in driver on one run: correctness and tool latency.

    .venv/bin/python bench/concurrency.py [--clients 8] [--cycles 200] [--driver-evals 200]

Starts `evomcp serve --http` on 127.0.0.1, starts a run with a driver (perturb operator), and lets
N clients each do C sample_parent -> propose_candidate (evaluated) cycles at the same time. Prints
p50/p99 latency per tool, throughput, and checks that no program was lost or stored twice and that
the counts agree with the archive.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
from mcp import Client

from _common import serve_http  # bench/_common.py, next to this script
from evomcp.testing.servers import free_port
from evomcp.tools.perturb import perturb


async def agent(url, run_id, seed, cycles, told, latency):
    rng = np.random.default_rng(seed)
    async with Client(url) as client:
        for _ in range(cycles):
            t = time.perf_counter()
            sampled = (await client.call_tool("sample_parent", {"run_id": run_id})).structured_content
            latency["sample_parent"].append(time.perf_counter() - t)
            change = None
            while change is None:
                change = perturb(sampled["parent"]["code"], rng)
            t = time.perf_counter()
            result = await client.call_tool("propose_candidate", {
                "run_id": run_id, "parent_id": sampled["parent"]["id"], "code": change[0],
                "ticket": sampled["ticket"]})
            latency["propose_candidate (evaluated)"].append(time.perf_counter() - t)
            if not result.is_error:
                told.append(result.structured_content["program"]["id"])
            t = time.perf_counter()
            await client.call_tool("get_run_status", {"run_id": run_id})
            latency["get_run_status"].append(time.perf_counter() - t)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--driver-evals", type=int, default=200)
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp()) / "bench.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = serve_http(db, port, "--no-auth")
    try:
        async with Client(url) as client:
            status = (await client.call_tool("start_run", {
                "task": "circle_packing_26", "config": {"novelty": False},
                "driver": {"max_evaluations": args.driver_evals + args.clients * args.cycles,
                           "concurrency": 2}})).structured_content
        run_id = status["run"]["run_id"]
        told: list[int] = []
        latency: dict[str, list[float]] = {"sample_parent": [], "propose_candidate (evaluated)": [],
                                           "get_run_status": []}
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for seed in range(args.clients):
                tg.start_soon(agent, url, run_id, seed, args.cycles, told, latency)
        elapsed = time.perf_counter() - started
        async with Client(url) as client:
            await client.call_tool("stop_run", {"run_id": run_id})
            status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, code_hash, status, generation FROM programs").fetchall()
    con.close()
    ids = {r[0] for r in rows}
    non_seed = [r for r in rows if r[3] > 0]
    print(f"{args.clients} clients x {args.cycles} cycles + driver, {elapsed:.1f} s, "
          f"{len(non_seed) / elapsed:.1f} programs/s")
    print(f"{'tool':32} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in latency.items():
        ms = np.array(values) * 1000
        print(f"{name:32} {len(ms):6d} {np.percentile(ms, 50):8.1f} {np.percentile(ms, 99):8.1f}")
    lost = set(told) - ids
    dupes = len(non_seed) - len({r[1] for r in non_seed})
    unfinished = sum(1 for r in rows if r[2] not in ("evaluated", "failed"))
    print(f"programs told to clients: {len(told)}, lost: {len(lost)}, stored twice: {dupes}, "
          f"unfinished: {unfinished}, archive total: {len(rows)}, status total: {status['evaluations_finished']}, "
          f"driver evaluations: {status['driver']['evaluations']}")


if __name__ == "__main__":
    anyio.run(main)
