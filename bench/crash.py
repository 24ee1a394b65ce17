"""Crash safety at a bigger scale than the tests: kill -9 many times during one run, and resume it.

    .venv/bin/python bench/crash.py [--kills 100] [--budget 1000] [--concurrency 2] [--mode serve|run|both]

`serve`: kills `evomcp serve --http` during one driven run and restarts it with --resume-drivers. `run`:
kills `evomcp run` and resumes it with `--resume`. In both the first kill lands during the seed's
evaluation. After every kill: PRAGMA integrity_check, every program a client saw is still there, no
program evaluated before is evaluated again, no process of the dead one survives. At the end: the run
reached its budget and went past it by no more than the evaluations in flight, every island holds the
seed, no program was stored twice, no work folder of a killed process is left. Prints figures and any
violation.
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

from _common import serve_http  # bench/_common.py, next to this script
from evomcp.testing import procs
from evomcp.testing.servers import free_port


def snapshot(db: Path) -> dict[int, tuple]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity check failed"
        return {r[0]: r for r in con.execute("SELECT id, code_hash, status, evaluated_at, generation FROM programs")}
    finally:
        con.close()


ISLANDS = 2


def kill_during_seed(db: Path, proc: subprocess.Popen) -> bool:
    """SIGKILL `proc` while the run's seed (program 1) is being evaluated; False if that moment was missed."""
    while proc.poll() is None:
        try:
            con = sqlite3.connect(db)
            row = con.execute("SELECT status FROM programs WHERE id = 1").fetchone()
            con.close()
        except sqlite3.OperationalError:
            row = None
        if row is not None and row[0] != "pending":
            hit = row[0] == "running"
            proc.kill()
            proc.wait()
            return hit
        time.sleep(0.005)
    return False


def final_checks(db: Path, budget: int, concurrency: int, killed: list[int]) -> list[str]:
    """What must hold once the run is done: budget kept, islands seeded, nothing twice, no folder left."""
    rows = snapshot(db)
    violations = []
    candidates = [r for r in rows.values() if r[4] > 0]
    done = sum(1 for r in candidates if r[2] in ("evaluated", "failed"))
    if not budget <= done <= budget + concurrency:
        violations.append(f"{done} candidates evaluated for a budget of {budget} (concurrency {concurrency})")
    if len({r[1] for r in candidates}) != len(candidates):
        violations.append("a program was stored twice")
    con = sqlite3.connect(db)
    seeded = {i for i, in con.execute("SELECT island FROM programs WHERE parent_id IS NULL")}
    con.close()
    if seeded != set(range(ISLANDS)):
        violations.append(f"the seed sits on islands {sorted(seeded)} of {ISLANDS}")
    left = [p for pid in killed for p in Path(tempfile.gettempdir()).glob(f"evomcp-sandbox-{pid}-*")]
    if left:
        violations.append(f"{len(left)} work folders of killed processes left behind")
    return violations


def run_mode(args: argparse.Namespace, rng: random.Random) -> None:
    """Kill `evomcp run` again and again, resuming it with --resume each time."""
    db = Path(tempfile.mkdtemp()) / "crash-run.db"
    base = [sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--budget", str(args.budget),
            "--concurrency", str(args.concurrency), "--db", str(db), "--progress-every", "3600"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    started, killed, violations, tracebacks = time.monotonic(), [], [], 0
    proc = subprocess.Popen([*base, "--config", f'{{"num_islands": {ISLANDS}}}'], **quiet)
    seed_hit = kill_during_seed(db, proc)
    killed.append(proc.pid)
    evaluated: dict[int, float] = {}
    for kill in range(args.kills):
        proc = subprocess.Popen([*base, "--resume", "1"], **quiet)
        time.sleep(rng.uniform(0.5, 2.0))
        if proc.poll() is not None:
            break  # the budget was reached
        ours = procs.descendants(proc.pid, zombies=True)  # its sandbox template, children and scorer
        proc.kill()
        tracebacks += "Traceback" in proc.communicate()[1]
        killed.append(proc.pid)
        if procs.survivors(ours, 3.0):
            violations.append(f"kill {kill + 1}: sandbox processes outlived `evomcp run` by 3 s")
        rows = snapshot(db)
        violations += [f"kill {kill + 1}: program {i} evaluated again" for i, at in evaluated.items()
                       if rows[i][3] != at]
        evaluated.update({i: r[3] for i, r in rows.items() if r[2] in ("evaluated", "failed")})
    finished = subprocess.run([*base, "--resume", "1"], capture_output=True, text=True)
    if finished.returncode != 0:
        violations.append(f"the last resume failed: {finished.stderr[-500:]}")
    violations += final_checks(db, args.budget, args.concurrency, killed)
    if tracebacks:
        violations.append(f"{tracebacks} killed runs printed a traceback")
    print(f"`evomcp run`: {len(killed)} kill -9 (the first {'inside' if seed_hit else 'NOT inside'} the seed's "
          f"evaluation) and --resume, budget {args.budget}: {time.monotonic() - started:.0f} s; "
          f"violations: {len(violations)}")
    for line in violations[:20]:
        print("  ", line)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--mode", choices=["serve", "run", "both"], default="both")
    args = parser.parse_args()
    rng = random.Random(1)
    if args.mode in ("run", "both"):
        run_mode(args, rng)
    if args.mode in ("serve", "both"):
        await serve_mode(args, rng)


async def serve_mode(args: argparse.Namespace, rng: random.Random) -> None:
    db, port = Path(tempfile.mkdtemp()) / "crash.db", free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proc = serve_http(db, port, "--no-auth")
    async with Client(url) as client:
        status = (await client.call_tool("start_run", {"task": "circle_packing_26", "wait_s": 0, "config": {
            "num_islands": ISLANDS}, "driver": {"max_evaluations": args.budget, "concurrency": args.concurrency}}
        )).structured_content
    run_id = status["run"]["run_id"]
    killed = [proc.pid]
    seed_hit = kill_during_seed(db, proc)
    proc = serve_http(db, port, "--no-auth", "--resume-drivers")
    async with Client(url) as client:  # a seed cut short is evaluated again by resume_run, and its driver restarted
        await client.call_tool("resume_run", {"run_id": run_id})
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
        ours = procs.descendants(proc.pid, zombies=True)  # its sandbox template, children and scorer
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.append(proc.pid)
        if procs.survivors(ours, 3.0):
            violations.append(f"kill {kill + 1}: sandbox processes outlived the server by 3 s")
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
    violations += final_checks(db, args.budget, args.concurrency, killed)
    done = sum(1 for r in rows.values() if r[4] > 0)
    print(f"`evomcp serve`: {len(killed)} kill -9 (the first {'inside' if seed_hit else 'NOT inside'} the seed's "
          f"evaluation) during one run of budget {args.budget}: {time.monotonic() - started:.0f} s, "
          f"{done} candidates evaluated, restart to listening median {sorted(restarts)[len(restarts) // 2]:.2f} s")
    print(f"programs seen by a client: {len(seen)}; violations: {len(violations)}")
    for line in violations[:20]:
        print("  ", line)


if __name__ == "__main__":
    anyio.run(main)
