"""Scale-out overhead: the local executor against the Ray and Dask backends at equal slot counts.

Run: .venv/bin/python bench/scale_out.py                       (2 slots, local clusters started here)
     .venv/bin/python bench/scale_out.py --slots 2 --n 400 --serial 100 --sleep 0.1 --sleep 0.5
     .venv/bin/python bench/scale_out.py --backend dask --cluster tcp://HOST:8786 --slots 16

For each backend (local; ray and dask, each on a local cluster of --slots single-CPU workers
started by this script, unless --cluster names one), on circle_packing_26:

1. startup: opening the executor (connecting, or starting the cluster) and the first
   evaluation (which starts a warm template on a worker);
2. latency: --serial evaluations one at a time (the seed and perturbed variants); the median
   minus the local median is the overhead per task of the backend (job out as JSON, scheduling,
   result back; the sandbox and the scorer are the same on every backend);
3. throughput: --n evaluations with --slots in flight, candidates/s;
4. long candidates: for each --sleep S, 4 x slots candidates that sleep S seconds first, at
   --slots in flight: the share of the ideal slots/S rate each backend reaches.

The slots are on this one machine, so scale-out cannot win here: the figures say what a task
costs on each engine, hence how long candidates must run for more machines to pay off.
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio
import numpy as np

from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.task import resolve_task
from evomcp.tools.perturb import perturb

TASK = resolve_task("circle_packing_26")
MARKER = '    """Concentric rings around the middle of the square; an outer ring takes the rest."""\n'


def variants(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    codes = [TASK.initial_code]
    while len(codes) < count:
        change = perturb(codes[0], rng, max_changes=2)
        if change is not None:
            codes.append(change[0])
    return codes


def sleeper(seconds: float) -> str:
    return TASK.initial_code.replace(MARKER, MARKER + f"    import time\n    time.sleep({seconds})\n")


def executor_for(backend: str, cluster: str, slots: int):
    if backend == "local":
        return LocalExecutor(slots)
    from evomcp.evaluators.backends import make_executor

    return make_executor(backend, cluster, slots)


async def concurrently(executor, task, codes: list[str], slots: int) -> tuple[float, int]:
    """Wall seconds to evaluate every code with `slots` in flight; how many came back correct."""
    queue = list(codes)
    correct = 0

    async def worker() -> None:
        nonlocal correct
        while queue:
            report = await executor.evaluate(task, queue.pop())
            correct += report.correct

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(slots):
            tg.start_soon(worker)
    return time.perf_counter() - start, correct


async def measure(backend: str, args: argparse.Namespace) -> dict:
    row: dict = {"backend": backend}
    t0 = time.perf_counter()
    executor = executor_for(backend, args.cluster if backend != "local" else "", args.slots)
    async with executor:
        row["open_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        first = await executor.evaluate(TASK, TASK.initial_code)
        row["first_s"] = time.perf_counter() - t1
        assert first.correct, first.error
        row["isolation"] = first.isolation
        await concurrently(executor, TASK, [TASK.initial_code] * (2 * args.slots), args.slots)  # warm every slot
        codes = variants(max(args.serial, args.n), args.seed)
        latencies = []
        for code in codes[:args.serial]:
            t = time.perf_counter()
            await executor.evaluate(TASK, code)
            latencies.append((time.perf_counter() - t) * 1e3)
        row["lat_median_ms"] = statistics.median(latencies)
        row["lat_p90_ms"] = float(np.percentile(latencies, 90))
        wall, correct = await concurrently(executor, TASK, codes[:args.n], args.slots)
        row["rate"] = args.n / wall
        row["correct"] = correct
        row["long"] = {}
        for seconds in args.sleep:
            task = TASK.model_copy(update={"timeout_s": seconds + 30})
            count = 4 * args.slots
            wall, correct = await concurrently(executor, task, [sleeper(seconds)] * count, args.slots)
            assert correct == count
            row["long"][seconds] = (count / wall) / (args.slots / seconds)
    return row


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for backend in args.backend:
        print(f"measuring {backend} ...", flush=True)
        rows.append(await measure(backend, args))
    local = next((r for r in rows if r["backend"] == "local"), None)
    print(f"\ncircle_packing_26, {args.slots} slots; latency over {args.serial} evaluations one at a time, "
          f"throughput over {args.n} with {args.slots} in flight\n")
    header = (f"{'backend':8} {'open s':>7} {'1st eval s':>10} {'latency ms':>11} {'p90 ms':>7} "
              f"{'overhead ms':>12} {'cand/s':>7} {'vs local':>8}")
    for seconds in args.sleep:
        header += f" {f'{seconds:g} s tasks':>11}"
    print(header)
    for r in rows:
        overhead = r["lat_median_ms"] - local["lat_median_ms"] if local else float("nan")
        ratio = r["rate"] / local["rate"] if local else float("nan")
        line = (f"{r['backend']:8} {r['open_s']:7.2f} {r['first_s']:10.2f} {r['lat_median_ms']:11.1f} "
                f"{r['lat_p90_ms']:7.1f} {overhead:12.1f} {r['rate']:7.1f} {ratio:8.2f}")
        for seconds in args.sleep:
            line += f" {r['long'][seconds]:11.1%}"
        print(line)
    print(f"\n(isolation: {', '.join(sorted({r['isolation'] for r in rows}))}; the last columns: throughput of "
          f"candidates that sleep that long, as a share of the ideal slots/seconds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["local", "ray", "dask"], default=None,
                        help="backends to measure (repeatable; default: all three)")
    parser.add_argument("--cluster", default="", help="address of an existing cluster for ray/dask "
                        "(default: start a local one with --slots workers)")
    parser.add_argument("--slots", type=int, default=2, help="evaluations in flight, and workers of local clusters")
    parser.add_argument("--n", type=int, default=300, help="evaluations for the throughput figure")
    parser.add_argument("--serial", type=int, default=60, help="evaluations one at a time for the latency figure")
    parser.add_argument("--sleep", type=float, action="append", default=None,
                        help="also time candidates that sleep this long (repeatable; default 0.1 and 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.backend = args.backend or ["local", "ray", "dask"]
    args.sleep = args.sleep or [0.1, 1.0]
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
