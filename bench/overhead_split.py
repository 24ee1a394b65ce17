"""Where evomcp's own cost per candidate goes: the server process against its children.

    .venv/bin/python bench/overhead_split.py                  # 300 candidates, 1 slot; ~15 s
    .venv/bin/python bench/overhead_split.py --profile 25     # also cProfile's top 25 of the server

Runs `evomcp run` in this process (the CLI's own `main`) against the instant fake model of
bench/compare_peers.py (same task directory, same replies), and reads `getrusage` around it:
RUSAGE_SELF is the server (its event loop, aiosqlite's thread, the `openai` client) plus the
fake model's thread, RUSAGE_CHILDREN the warm template, the sandboxed candidates and the trusted
scorer. With --profile, cProfile watches the server's main thread and prints its functions by
cumulative time (coroutines count only while they run, not while they wait).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_peers  # noqa: E402 - the peers bench's task and instant model
from fake_openai import FakeOpenAI  # noqa: E402

from evomcp.server import cli  # noqa: E402


def cpu_ms(before: resource.struct_rusage, after: resource.struct_rusage, n: int) -> float:
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evomcp-split-"))
    task = compare_peers.write_task(work)
    model = compare_peers.InstantModel(seed=1)
    with FakeOpenAI(responder=model) as fake:
        argv = ["run", str(task), "--model", f"name=fake,base_url={fake.base_url},key_env=none,price_in=0,price_out=0",
                "--no-perturb", "--budget", str(args.candidates), "--concurrency", str(args.slots),
                "--slots", str(args.slots), "--db", str(work / "archive.db"),
                "--config", json.dumps({"novelty": False, "num_islands": 1}), "--seed", "1"]
        profiler = cProfile.Profile() if args.profile else None
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        if profiler:
            profiler.enable()
        try:
            cli.main(argv)
        except SystemExit:
            pass
        if profiler:
            profiler.disable()
        wall = time.monotonic() - started
        own_after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    n = args.candidates
    print(f"\n{n} candidates, {args.slots} slot(s): wall {wall * 1000 / n:.1f} ms per candidate; CPU per candidate: "
          f"server (+ fake model thread) {cpu_ms(own, own_after, n):.1f} ms, "
          f"children (template, candidates, scorer) {cpu_ms(children, children_after, n):.1f} ms")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
