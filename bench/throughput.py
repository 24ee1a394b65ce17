"""Sustained throughput of a run with 2 slots, and whether memory stays flat, on circle_packing_26.

Run: .venv/bin/python bench/throughput.py                      (2,000 candidates)
     .venv/bin/python bench/throughput.py --candidates 300      (quick)

It drives the tool functions the way a real run does: `open_workspace(<temp archive>, slots=2)`,
`runs.start_run(ws, "circle_packing_26")`, then 2 concurrent workers each looping
sample_parent -> perturb(parent code, ws.rng) -> propose_candidate(code=..., patch_type="full"),
which inserts the program and evaluates it in the sandbox. Refusals (EvoError: exact duplicates,
for one) and perturbs that change nothing are counted and skipped; only evaluated candidates
count towards --candidates.

Every --every candidates (250) it samples the RSS of this process and of the fork server
(/proc/<pid>/status VmRSS), and prints them; at the end: candidates/s overall and per --window
(500) candidates with the median step times of the window, RSS first vs last and its slope per
1000 candidates, and leak checks (open fds, leftover children, cgroups and temp dirs). The machine
may be shared: the share of CPU time other processes took is printed per window.
"""

from __future__ import annotations

import argparse
import glob
import inspect
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

from _common import cpu_shares, machine_ticks, own_ticks, process_ticks, rss_mb  # bench/_common.py
from evomcp.testing import procs
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.perturb import perturb
from evomcp.tools.workspace import open_workspace

TASK = "circle_packing_26"
# Say which operator wrote the change where propose_candidate asks (as the built-in driver does).
OPERATOR = {"operator": "perturb"} if "operator" in inspect.signature(steps.propose_candidate).parameters else {}
MAX_REFUSALS_IN_A_ROW = 500


def running_candidates(pid: int | None) -> list[int]:
    """The template's children that run a candidate: not the spare it keeps prepared (`evomcp-spare`)."""
    if pid is None:
        return []
    return [child for child in procs.children(pid) if procs.comm(child) not in ("", "evomcp-spare")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def leftovers(workdirs: Path) -> tuple[int, int]:
    """Evaluation temp dirs and evaluation cgroups of this process still present."""
    tmp = len(glob.glob(str(workdirs / "evomcp-eval-*")))
    cgroups = len(glob.glob(f"/sys/fs/cgroup/pids/evomcp/eval-{os.getpid()}-*")
                  + glob.glob(f"/sys/fs/cgroup/evomcp/eval-{os.getpid()}-*"))
    return tmp, cgroups


@dataclass
class Cpu:
    """Machine ticks (total, busy) and this benchmark's ticks: itself, the fork server and the children it
    reaped (the candidates), the scorer. Differences between two readings give shares of a window."""

    total: float
    busy: float
    own: float

    @classmethod
    def read(cls, fork_pid: int | None = None, scorer_pid: int | None = None) -> Cpu:
        own = own_ticks() + process_ticks(fork_pid, reaped=True) + process_ticks(scorer_pid, reaped=False)
        return cls(*machine_ticks(), own)

    def shares(self, later: Cpu) -> tuple[float, float, float]:
        """(busy, ours, others) as fractions of the machine's CPU time between the two readings."""
        return cpu_shares((self.total, self.busy, self.own), (later.total, later.busy, later.own))


@dataclass
class Sample:
    candidates: int
    t: float
    server_mb: float | None
    fork_mb: float | None
    scorer_mb: float | None
    fds: int
    cpu: Cpu


@dataclass
class Stats:
    target: int
    claimed: int = 0
    evaluated: int = 0
    correct: int = 0
    failed: int = 0
    improved: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    no_change: int = 0
    refused_in_a_row: int = 0
    last_refusal: str = ""
    sample_ms: list[float] = field(default_factory=list)  # every sample_parent call
    steps: list[tuple[int, float, float, float]] = field(default_factory=list)  # per evaluated candidate:
    # (its number, sample_parent ms, propose_candidate ms, executor ms)
    samples: list[Sample] = field(default_factory=list)


def refusal_kind(message: str) -> str:
    if "duplicate" in message:
        return "duplicate"
    if "leaves the program as it was" in message:
        return "no change"
    if "too similar" in message:
        return "novelty"
    return message.split(";")[0][:60]


async def worker(ws, run_id: int, stats: Stats, start: float, every: int, helpers) -> None:
    while stats.claimed < stats.target:
        stats.claimed += 1
        t0 = time.perf_counter()
        sampled = await steps.sample_parent(ws, run_id)
        t1 = time.perf_counter()
        stats.sample_ms.append((t1 - t0) * 1e3)
        change = perturb(sampled.parent.code, ws.rng)
        if change is None:
            stats.no_change += 1
            stats.claimed -= 1
            ws.tickets.redeem(sampled.ticket, run_id, sampled.parent.id)
            continue
        code, description = change
        try:
            result = await steps.propose_candidate(ws, run_id, sampled.parent.id, code=code, patch_type="full",
                                                   description=description, ticket=sampled.ticket, **OPERATOR)
        except EvoError as exc:
            kind = refusal_kind(str(exc))
            stats.refused[kind] = stats.refused.get(kind, 0) + 1
            stats.claimed -= 1
            stats.refused_in_a_row += 1
            stats.last_refusal = str(exc)
            ws.tickets.redeem(sampled.ticket, run_id, sampled.parent.id)
            if stats.refused_in_a_row >= MAX_REFUSALS_IN_A_ROW:
                raise SystemExit(f"{stats.refused_in_a_row} refusals in a row, giving up; the last: {exc}")
            continue
        stats.refused_in_a_row = 0
        stats.evaluated += 1
        program = result.program
        stats.steps.append((stats.evaluated, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3,
                            (program.eval_seconds or float("nan")) * 1e3))
        if program.status == "failed":
            stats.failed += 1
        elif program.correct:
            stats.correct += 1
        stats.improved += result.is_new_best
        if stats.evaluated % every == 0:
            take_sample(stats, start, *helpers())


def take_sample(stats: Stats, start: float, fork_pid: int | None, scorer_pid: int | None) -> None:
    s = Sample(stats.evaluated, time.perf_counter() - start, rss_mb(), rss_mb(fork_pid), rss_mb(scorer_pid),
               open_fds(), Cpu.read(fork_pid, scorer_pid))
    stats.samples.append(s)
    rate = s.candidates / s.t if s.t > 0 else 0.0
    cells = ["-" if v is None else f"{v:.1f}" for v in (s.server_mb, s.fork_mb, s.scorer_mb)]
    others = f"{stats.samples[-2].cpu.shares(s.cpu)[2]:.0%}" if len(stats.samples) > 1 else "-"
    print(f"{s.candidates:>10} {s.t:>8.1f} {rate:>8.1f} {cells[0]:>13} {cells[1]:>15} {cells[2]:>13} {s.fds:>5} "
          f"{others:>11}", flush=True)


def slope_per_1000(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.array(xs) / 1000.0, np.array(ys), 1)[0])


def ms_line(name: str, values: list[float]) -> str:
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return f"  {name:40} -"
    return (f"  {name:40} median {statistics.median(values):7.2f}  p90 {np.percentile(values, 90):7.2f}  "
            f"mean {statistics.fmean(values):7.2f}")


def median_of(values) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        db = Path(tmp) / "archive.db"
        workdirs = Path(tmp) / "work"  # the executor's temp dirs go here, so leftovers are ours alone
        workdirs.mkdir()
        tempfile.tempdir = str(workdirs)
        load0 = os.getloadavg()
        async with open_workspace(db, slots=args.slots) as ws:
            ws.rng = np.random.default_rng(args.seed)
            t0 = time.perf_counter()
            status = await runs.start_run(ws, TASK)
            run_id = status.run.run_id
            print(f"{TASK}: run {run_id} started in {time.perf_counter() - t0:.2f} s (seed evaluated, fork server "
                  f"warm); isolation {status.isolation}; {args.slots} slots, {args.workers} workers, "
                  f"{os.cpu_count()} CPUs; load average {load0[0]:.2f}\n")
            stats = Stats(target=args.candidates)
            print(f"{'candidates':>10} {'t s':>8} {'cand/s':>8} {'server RSS MB':>13} {'fork srv RSS MB':>15} "
                  f"{'scorer RSS MB':>13} {'fds':>5} {'others CPU':>11}")
            start = time.perf_counter()

            def helpers() -> tuple[int | None, int | None]:
                """Pids of the fork server and the scorer process (read afresh: restarted if they die)."""
                scorer = getattr(ws.executor, "_scorer", None)  # absent where scoring is in-process
                return ws.executor.template_pid, getattr(scorer, "pid", None)

            take_sample(stats, start, *helpers())
            async with anyio.create_task_group() as tg:
                for _ in range(args.workers):
                    tg.start_soon(worker, ws, run_id, stats, start, args.every, helpers)
            wall = time.perf_counter() - start
            if stats.samples[-1].candidates != stats.evaluated:
                take_sample(stats, start, *helpers())
            load1 = os.getloadavg()
            final = await runs.get_run_status(ws, run_id)
            fork_children = running_candidates(helpers()[0])
            db_mb = sum(p.stat().st_size for p in Path(tmp).glob("archive.db*")) / 1024**2
        tmp_left, cgroups_left = leftovers(workdirs)

    samples = stats.samples
    print(f"\n{stats.evaluated} candidates evaluated in {wall:.1f} s: {stats.evaluated / wall:.1f} candidates/s "
          f"overall ({args.slots} slots); load average {load1[0]:.2f} at the end")
    print(f"  correct {stats.correct}, incorrect {stats.evaluated - stats.correct - stats.failed}, failed "
          f"{stats.failed}, new bests {stats.improved}; best score {final.best.combined_score if final.best else None}")
    busy, ours, others = samples[0].cpu.shares(samples[-1].cpu)
    print(f"  CPU use of the machine during the run: {busy:.0%} busy: this benchmark {ours:.0%} (server, fork server "
          f"and candidates, scorer), other processes {others:.0%}")
    print(f"  refused by propose_candidate: {sum(stats.refused.values())} {stats.refused or ''}; perturb changed "
          f"nothing: {stats.no_change}")

    print(f"\n{'window (candidates)':>20} {'seconds':>8} {'cand/s':>8} {'sample_parent':>14} {'propose':>8} "
          f"{'executor':>9} {'others CPU':>11}")
    print(f"{'':>20} {'':>8} {'':>8} {'median ms':>14} {'ms':>8} {'ms':>9}")
    marks = [s for s in samples if s.candidates % args.window == 0 or s is samples[-1]]
    for a, b in zip(marks, marks[1:]):
        if b.candidates > a.candidates:
            inside = [st for st in stats.steps if a.candidates < st[0] <= b.candidates]
            label = f"{a.candidates + 1}-{b.candidates}"
            print(f"{label:>20} {b.t - a.t:>8.1f} {(b.candidates - a.candidates) / (b.t - a.t):>8.1f} "
                  f"{median_of(st[1] for st in inside):>14.2f} {median_of(st[2] for st in inside):>8.2f} "
                  f"{median_of(st[3] for st in inside):>9.2f} {a.cpu.shares(b.cpu)[2]:>11.0%}")

    print(f"\nper step (ms; a worker's view, {args.workers} workers at once):")
    print(ms_line("sample_parent (every call)", stats.sample_ms))
    print(ms_line("propose_candidate (insert + evaluate)", [st[2] for st in stats.steps]))
    print(ms_line("of which the executor (eval_seconds)", [st[3] for st in stats.steps]))

    xs = [s.candidates for s in samples]
    print("\nmemory:")
    for name, ys in (("server RSS", [s.server_mb for s in samples]), ("fork server RSS", [s.fork_mb for s in samples]),
                     ("scorer RSS", [s.scorer_mb for s in samples])):
        if all(y is None for y in ys):
            continue
        if any(y is None for y in ys):
            print(f"  {name:16} not readable at every sample: {ys}")
            continue
        half = len(xs) // 2
        slope, slope_late = slope_per_1000(xs, ys), slope_per_1000(xs[half:], ys[half:])
        late = "-" if slope_late is None else f"{slope_late:+.2f}"
        print(f"  {name:16} first {ys[0]:7.1f} MB  last {ys[-1]:7.1f} MB  ({ys[-1] - ys[0]:+.1f})  slope "
              f"{slope:+.2f} MB per 1000 candidates (second half: {late})")
    print(f"  open fds of this process: first {samples[0].fds}, last {samples[-1].fds}")
    print(f"  archive size at the end: {db_mb:.1f} MB (db + wal)")
    print(f"  leftovers: candidate processes alive {len(fork_children)}, evaluation temp dirs {tmp_left}, "
          f"evaluation cgroups {cgroups_left}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000, help="evaluated candidates to reach")
    parser.add_argument("--slots", type=int, default=2, help="executor slots")
    parser.add_argument("--workers", type=int, default=2, help="concurrent proposing workers")
    parser.add_argument("--every", type=int, default=250, help="sample RSS every this many candidates")
    parser.add_argument("--window", type=int, default=500, help="candidates per throughput window")
    parser.add_argument("--seed", type=int, default=0, help="seed of the workspace RNG (selection, perturb)")
    args = parser.parse_args()
    if args.window % args.every:
        sys.exit("--window must be a multiple of --every")
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
