"""Crash safety at a bigger scale than the test: kill -9 the server many times during one driven run.

    .venv/bin/python bench/crash.py [--kills 100] [--budget 1000] [--concurrency 2]

After every kill: PRAGMA integrity_check, every program a client saw is still there, no program
evaluated before is evaluated again, no sandbox process of the dead server survives. At the end: the
run reached its budget with no program stored twice. Prints the figures and any violation.
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

from _common import free_port, serve_http  # bench/_common.py, next to this script


def survivors(pid: int) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"evaluators/child.py --owner {pid} "], capture_output=True, text=True)
    return out.stdout.split()


def snapshot(db: Path) -> dict[int, tuple]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity check failed"
        return {r[0]: r for r in con.execute("SELECT id, code_hash, status, evaluated_at, generation FROM programs")}
    finally:
        con.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(1)
    db, port = Path(tempfile.mkdtemp()) / "crash.db", free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = serve_http(db, port, "--no-auth")
    async with Client(url) as client:
        status = (await client.call_tool("start_run", {"task": "circle_packing_26", "driver": {
            "max_evaluations": args.budget, "concurrency": args.concurrency}})).structured_content
    run_id = status["run"]["run_id"]
    seen: set[int] = set()
    evaluated: dict[int, float] = {}
    violations: list[str] = []
    started = time.monotonic()
    restarts = []
    for kill in range(args.kills):
        await anyio.sleep(rng.uniform(0.1, 1.0))
        async with Client(url) as client:
            page = (await client.call_tool("get_archive", {"run_id": run_id, "limit": 200,
                                                           "order": "newest"})).structured_content
        seen |= {p["id"] for p in page["programs"]}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)
        if survivors(proc.pid):
            violations.append(f"kill {kill + 1}: sandbox processes outlived the server")
        rows = snapshot(db)
        violations += [f"kill {kill + 1}: program {i} lost" for i in seen if i not in rows]
        violations += [f"kill {kill + 1}: program {i} evaluated again" for i, at in evaluated.items()
                       if rows[i][3] != at]
        evaluated.update({i: r[3] for i, r in rows.items() if r[2] in ("evaluated", "failed")})
        t = time.monotonic()
        proc = serve_http(db, port, "--no-auth", "--resume-drivers")
        restarts.append(time.monotonic() - t)
    while True:
        async with Client(url) as client:
            status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
        if status["driver"]["state"] == "finished":
            break
        await anyio.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    rows = snapshot(db)
    hashes = [r[1] for r in rows.values() if r[4] > 0]
    if len(hashes) != len(set(hashes)):
        violations.append("a program was stored twice")
    done = len(hashes)
    print(f"{args.kills} kill -9 during one run of budget {args.budget}: {time.monotonic() - started:.0f} s, "
          f"{done} candidates evaluated, restart to listening median {sorted(restarts)[len(restarts) // 2]:.2f} s")
    print(f"programs seen by a client: {len(seen)}; violations: {len(violations)}")
    for line in violations[:20]:
        print("  ", line)


if __name__ == "__main__":
    anyio.run(main)
