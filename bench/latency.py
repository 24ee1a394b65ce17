"""Unloaded round-trip latency of the read-only tools with the real `mcp` client, stdio against HTTP.

    .venv/bin/python bench/latency.py               # 500 timed calls per tool and client; ~80 s
    .venv/bin/python bench/latency.py --quick       # 50 calls

One archive in a temp dir, served by `evomcp serve --http` on a free port of 127.0.0.1 (with a
random bearer token) and by `evomcp serve` over stdio. Through the HTTP server the script starts
a run of circle_packing_26 and proposes perturbed candidates until it holds --programs evaluated
programs (novelty off). Then four clients connect at once: stdio and HTTP, each in both protocol
eras of the SDK (`mode="auto"`, which negotiates the 2026 protocol, and `mode="legacy"`, the
initialize handshake; over stdio each client starts its own server on the same archive). After a
warm-up, each client times --calls calls of list_runs, get_run_status, get_archive (first page of
20), get_program (the best, with code), one call in flight at a time, from before `call_tool` to
its validated result. The clients take turns in blocks of calls, so load from other processes on
a shared machine falls on all of them alike. Prints p50/p90/p99 per transport, mode and tool, the
CPU share other processes took, and checks the target: p50 under 3 ms.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import numpy as np
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from _common import cpu_shares, machine_ticks, own_ticks, process_ticks, serve_http  # bench/_common.py
from evomcp.testing import procs
from evomcp.testing.servers import free_port
from evomcp.tools.perturb import perturb

TARGET_P50_MS = 3.0
ROUNDS = 10  # the timed calls of each client and tool come in this many blocks, taken in turn
ENV = {**os.environ, "EVOMCP_LOG_LEVEL": "WARNING"}


def http_transport(url: str, token: str):
    return streamable_http_client(url, http_client=create_mcp_http_client(
        headers={"Authorization": f"Bearer {token}"}))


def cpu_ticks() -> tuple[float, float, float]:
    """Machine (total, busy) ticks and this benchmark's: this process and its live children (the servers)."""
    own = own_ticks(reaped=False)
    own += sum(process_ticks(pid, reaped=False) for pid in procs.children())
    return (*machine_ticks(), own)


async def seed_run(client: Client, programs: int) -> tuple[int, int]:
    """A run of circle_packing_26 with `programs` evaluated programs; returns (run id, best program id)."""
    status = (await client.call_tool("start_run", {"task": "circle_packing_26",
                                                   "config": {"novelty": False}})).structured_content
    run_id = status["run"]["run_id"]
    rng = np.random.default_rng(0)
    while status["evaluations_finished"] < programs:
        sampled = (await client.call_tool("sample_parent", {"run_id": run_id})).structured_content
        change = perturb(sampled["parent"]["code"], rng)
        if change is not None:
            await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": sampled["parent"]["id"],
                                                         "code": change[0], "ticket": sampled["ticket"]})
        status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
    return run_id, status["best"]["id"]


async def timed_calls(client: Client, name: str, args: dict, n: int, into: list[float]) -> None:
    for _ in range(n):
        t = time.perf_counter()
        result = await client.call_tool(name, args)
        into.append(time.perf_counter() - t)
        if result.is_error:
            raise SystemExit(f"{name} failed: {result.content[0].text}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per tool and client")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per tool and client first")
    parser.add_argument("--programs", type=int, default=20, help="evaluated programs in the run")
    parser.add_argument("--quick", action="store_true", help="--calls 50 --warmup 10")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup = 50, 10

    with tempfile.TemporaryDirectory(prefix="evomcp-latency-") as tmp:
        db = Path(tmp) / "archive.db"
        port, token = free_port(), secrets.token_urlsafe(24)
        url = f"http://127.0.0.1:{port}/mcp"
        http = serve_http(db, port, env={"EVOMCP_TOKEN": token}, stderr=None)
        try:
            async with Client(http_transport(url, token)) as client:
                run_id, best_id = await seed_run(client, args.programs)
            tools = {"list_runs": {}, "get_run_status": {"run_id": run_id},
                     "get_archive": {"run_id": run_id, "limit": 20},
                     "get_program": {"run_id": run_id, "program_id": best_id}}
            stdio = StdioServerParameters(command=sys.executable, args=["-m", "evomcp", "serve", "--db", str(db)],
                                          env=ENV)
            async with AsyncExitStack() as stack:
                clients = {}
                for transport in ("stdio", "http"):
                    for mode in ("auto", "legacy"):
                        server = stdio if transport == "stdio" else http_transport(url, token)
                        clients[transport, mode] = await stack.enter_async_context(Client(server, mode=mode))
                for client in clients.values():
                    for name, tool_args in tools.items():
                        await timed_calls(client, name, tool_args, args.warmup, [])
                times: dict[tuple[str, str, str], list[float]] = {
                    (*key, name): [] for key in clients for name in tools}
                before = cpu_ticks()
                started = time.perf_counter()
                for block in range(ROUNDS):
                    n = args.calls // ROUNDS + (block < args.calls % ROUNDS)
                    for key, client in clients.items():
                        for name, tool_args in tools.items():
                            await timed_calls(client, name, tool_args, n, times[(*key, name)])
                elapsed = time.perf_counter() - started
                after = cpu_ticks()
                versions = {key: client.protocol_version for key, client in clients.items()}
        finally:
            http.send_signal(signal.SIGINT)
            try:
                http.wait(timeout=15)
            except subprocess.TimeoutExpired:
                http.kill()
                http.wait()

    busy, ours, others = cpu_shares(before, after)
    print(f"circle_packing_26 run of {args.programs} programs; {args.calls} timed calls per tool and client "
          f"after {args.warmup} warm-up calls; {elapsed:.1f} s")
    print(f"CPU during the timed calls: machine {busy:.0%} busy, this benchmark {ours:.0%}, "
          f"other processes {others:.0%}; load average {os.getloadavg()[0]:.2f}\n")
    print("| transport | mode (protocol) | tool | calls | p50 ms | p90 ms | p99 ms | p50 < 3 ms |")
    print("|---|---|---|---|---|---|---|---|")
    missed = []
    for (transport, mode, name), values in times.items():
        p50, p90, p99 = np.percentile(np.array(values) * 1000, [50, 90, 99])
        met = p50 < TARGET_P50_MS
        if not met:
            missed.append(f"{transport} {mode} {name}")
        print(f"| {transport} | {mode} ({versions[transport, mode]}) | {name} | {len(values)} | {p50:.2f} | "
              f"{p90:.2f} | {p99:.2f} | {'met' if met else 'missed'} |")
    print(f"\ntarget p50 < {TARGET_P50_MS:g} ms: " + ("met by every row" if not missed else
                                                    f"missed by {len(missed)} of {len(times)}: {', '.join(missed)}"))


if __name__ == "__main__":
    anyio.run(main)
