"""The floor under evomcp's throughput: what the sandboxed executor alone costs per candidate, and what
start-up costs before any of evomcp's own work.

Run: .venv/bin/python bench/floor.py [--n 300]     (about a minute; compare_peers.py runs it too, beside
                                                    the peers, and sets its figures against theirs)

The executor row evaluates compare_peers.py's task (the same programs: the seed and nudged variants)
through `LocalExecutor` alone, with no model, driver, archive or server: each candidate gets what the
sandbox gives every candidate, a fresh forked process with its own namespaces, root, uid and seccomp
filter, whose whole pid namespace ends with it. It measures, per candidate over the timed loop (the template's
start and a first evaluation excluded):
  wall      the loop's wall time / candidates (with K slots, K evaluations at once);
  server    this process's CPU (the executor's side: work dir, hand-over, channel, read back);
  template  the warm template's CPU with the candidates it forked and reaped (/proc, its own and its
            reaped children's);
  machine   every core's busy time (/proc/stat), the kernel's teardown of namespaces included (it runs
            in kernel workers that no process is charged for); on a quiet machine this is the real cost.
The same loop with isolate=False shows what the sandbox adds to a fork per candidate.

With C cores, a run that forks such a sandbox per candidate cannot keep a shorter period per candidate
than the executor alone: its machine time / C (the cores are full of it) or its wall time per candidate
(every slot busy), whichever is larger; the model calls, the archive and the driver only add to it.
compare_peers.py prints that floor beside OpenEvolve's whole steady period per candidate, measured in the
same run.

Start-up: `import openai` and `import evomcp.server.cli` (what `evomcp run` loads before its first model
call), each timed in fresh interpreters (the fastest of --rounds), and the two together; evomcp's first
model call cannot come before both are loaded, under one GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import compare_peers  # bench/compare_peers.py, next to this script: the peers bench's task and programs
from _common import machine_ticks, process_ticks
from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.task import load_task_dir

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def programs(seed: str, count: int = 40) -> list[str]:
    """The seed and a walk of nudges from it, as the peers bench's instant model writes them."""
    return [seed, *compare_peers.nudge_walk(seed, count - 1, random.Random(1))]


def own_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def executor_row(task_dir: Path, n: int, slots: int, isolate: bool) -> dict[str, float]:
    """Per-candidate wall and CPU of `n` evaluations through the executor alone, `slots` at a time."""
    task = load_task_dir(task_dir)
    codes = programs(task.initial_code)
    async with LocalExecutor(slots=slots, isolate=isolate) as executor:
        for code in codes[:slots]:  # the template, its spares and the first compile, before the clock
            await executor.evaluate(task, code)
        template = executor.template_pid
        server, tree, machine = own_cpu_ms(), process_ticks(template, reaped=True), machine_ticks()
        failed = 0
        started = time.perf_counter()
        limiter = anyio.Semaphore(slots)

        async def one(i: int) -> None:
            nonlocal failed
            async with limiter:
                report = await executor.evaluate(task, codes[i % len(codes)])
                failed += report.failed

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        wall = time.perf_counter() - started
        server_after, tree_after, machine_after = own_cpu_ms(), process_ticks(template, reaped=True), machine_ticks()
    return {"slots": slots, "isolate": isolate, "n": n, "failed": failed, "wall_ms": wall * 1000 / n,
            "server_cpu_ms": (server_after - server) / n, "template_cpu_ms": (tree_after - tree) * TICK_MS / n,
            "machine_busy_ms": (machine_after[1] - machine[1]) * TICK_MS / n,
            "machine_total_ms": (machine_after[0] - machine[0]) * TICK_MS / n}


def import_seconds(python: str, modules: list[str], rounds: int) -> float:
    """The fastest of `rounds` fresh interpreters importing `modules` (the interpreter's own start excluded)."""
    script = ("import time; t = time.perf_counter()\n" + "".join(f"import {m}\n" for m in modules)
              + "print(time.perf_counter() - t)")
    times = []
    for _ in range(rounds):
        done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120, check=True)
        times.append(float(done.stdout.strip()))
    return min(times)


def measure(n: int, slot_counts: list[int], rounds: int, work: Path) -> dict:
    task_dir = compare_peers.write_task(work)
    rows = []
    for slots in slot_counts:
        for isolate in (True, False):
            rows.append(anyio.run(executor_row, task_dir, n, slots, isolate))
    startup = {"openai": import_seconds(sys.executable, ["openai"], rounds),
               "evomcp.server.cli": import_seconds(sys.executable, ["evomcp.server.cli"], rounds),
               "both": import_seconds(sys.executable, ["evomcp.server.cli", "openai"], rounds)}
    return {"cores": os.cpu_count(), "executor": rows, "imports_s": startup}


def floor_ms(row: dict, cores: int) -> float:
    """The shortest period per candidate a run can keep on this machine with this executor: the cores full
    of the executor's own work, or every slot busy, whichever binds."""
    return max(row["machine_busy_ms"] / cores, row["wall_ms"])


def report(figures: dict) -> list[str]:
    cores = figures["cores"]
    head = ("| slots | sandbox | wall ms/cand | server CPU ms | template+candidates CPU ms | machine busy ms | "
            "floor ms/cand |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in figures["executor"]:
        lines.append(f"| {row['slots']} | {'per-candidate' if row['isolate'] else 'none (isolate=False)'} | "
                     f"{row['wall_ms']:.1f} | {row['server_cpu_ms']:.1f} | {row['template_cpu_ms']:.1f} | "
                     f"{row['machine_busy_ms']:.1f} | {floor_ms(row, cores):.1f} |")
    imports = figures["imports_s"]
    lines.append("")
    lines.append(f"imports in a fresh interpreter (fastest of the rounds): openai {imports['openai']:.2f} s, "
                 f"evomcp.server.cli {imports['evomcp.server.cli']:.2f} s, both {imports['both']:.2f} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="timed evaluations per row")
    parser.add_argument("--slots", default="1,2")
    parser.add_argument("--rounds", type=int, default=3, help="fresh interpreters per import time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evomcp-floor-") as tmp:
        figures = measure(args.n, [int(s) for s in args.slots.split(",")], args.rounds, Path(tmp))
    print(f"{figures['cores']} cores; load average {os.getloadavg()[0]:.2f}\n")
    print("\n".join(report(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
