"""Where evomcp's own cost per candidate goes: the server process against its children.

    .venv/bin/python bench/overhead_split.py                  # 300 candidates, 1 slot; ~15 s
    .venv/bin/python bench/overhead_split.py --slots 2 --profile 25   # also where the server's CPU goes

Runs `evomcp run` in this process (the CLI's own `main`) against the instant fake model of
bench/compare_peers.py (same task directory, same replies), served by a process of its own that is
reaped only after the figures are read, and reads `getrusage` around the run: RUSAGE_SELF is the server
(its event loop, aiosqlite's thread, the `openai` client), RUSAGE_CHILDREN the warm template, the
sandboxed candidates and the trusted scorer. With --profile, cProfile watches the server's main thread:
its CPU time (`time.thread_time`) by stage of a step (each the cumulative time of the functions named;
coroutines count only while they run, not while they wait), then its top N functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import multiprocessing
import pstats
import resource
import tempfile
import time
from pathlib import Path

import compare_peers  # bench/compare_peers.py, next to this script: the peers bench's task and instant model
from evomcp.server import cli
from evomcp.testing.fake_openai import FakeOpenAI


def cpu_ms(before: resource.struct_rusage, after: resource.struct_rusage, n: int) -> float:
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"),
                        help="order of those functions (tottime: their own time, without what they call)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evomcp-split-"))
    task = compare_peers.write_task(work)
    with model_server() as base_url:
        argv = ["run", str(task), "--model", f"name=fake,base_url={base_url},key_env=none,price_in=0,price_out=0",
                "--no-perturb", "--budget", str(args.candidates), "--concurrency", str(args.slots),
                "--slots", str(args.slots), "--db", str(work / "archive.db"),
                "--config", json.dumps({"novelty": False, "num_islands": 1}), "--seed", "1"]
        # the main thread's own CPU time: what another thread (aiosqlite's) or a wait costs is not charged to it
        profiler = cProfile.Profile(time.thread_time) if args.profile else None
        main_cpu = time.thread_time()
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
        main_cpu = time.thread_time() - main_cpu
        wall = time.monotonic() - started
        own_after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    n = args.candidates
    print(f"\n{n} candidates, {args.slots} slot(s): wall {wall * 1000 / n:.1f} ms per candidate; CPU per candidate: "
          f"server {cpu_ms(own, own_after, n):.1f} ms, "
          f"children (template, candidates, scorer) {cpu_ms(children, children_after, n):.1f} ms")
    if profiler:
        stats = pstats.Stats(profiler)
        print(f"\nthe server's main thread: {main_cpu * 1000 / n:.1f} ms of CPU per candidate (under cProfile), by "
              f"stage (cumulative CPU, share of the main thread's; stages nest: an evaluation is recorded):")
        for stage, seconds in stages(stats):
            print(f"  {seconds * 1000 / n:6.2f} ms  {seconds / main_cpu * 100:5.1f}%  {stage}")
        stats.sort_stats(args.sort).print_stats(args.profile)


STAGES = {  # a stage of a step: the functions whose cumulative time is its time (file suffix, function name)
    "model call (openai client, HTTP)": [("server/ensemble.py", "complete")],
    "sample_parent (selection, inspirations, brief)": [("tools/steps.py", "sample_parent")],
    "propose_candidate (patch, checks, insert)": [("tools/steps.py", "propose_candidate")],
    "evaluation, server side (work dir, template, read back, verdict)": [("evaluators/executor.py", "evaluate")],
    "recording a result (archive writes, migration)": [("tools/steps.py", "_record")],
    "archive statements, all (one trip to aiosqlite's thread each)": [("store/archive.py", "guarded")],
    "imports": [("<frozen importlib._bootstrap>", "_find_and_load")],
}


def stages(stats: pstats.Stats) -> list[tuple[str, float]]:
    """(stage, seconds of the main thread's CPU) for each of STAGES."""
    return [(stage, sum(v[3] for (path, _, func), v in stats.stats.items()
                        if any(path.endswith(suffix) and func == name for suffix, name in names)))
            for stage, names in STAGES.items()]


@contextlib.contextmanager
def model_server():
    """The instant fake model in a forked process, reaped after the caller has read its own figures."""
    receive, send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()

    def serve() -> None:
        with FakeOpenAI(responder=compare_peers.InstantModel(seed=1)) as fake:
            send.send(fake.base_url)
            stop.wait()

    process = multiprocessing.get_context("fork").Process(target=serve, daemon=True)
    process.start()
    try:
        yield receive.recv()
    finally:
        stop.set()
        process.join(10)


if __name__ == "__main__":
    main()
