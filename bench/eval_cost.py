"""Per-candidate evaluation cost on circle_packing_26: the warm fork-server executor against a
fresh interpreter per candidate.

Run: .venv/bin/python bench/eval_cost.py            (full: 200 warm, 30 per fresh-interpreter row)
     .venv/bin/python bench/eval_cost.py --n 20 --baseline-n 3    (quick)

Every row evaluates the same candidates in turn (the seed program and slight `perturb` variants of
it), one at a time, and times each from the outside with time.perf_counter:

- warm executor: `LocalExecutor(slots=1).evaluate(task, code)`, i.e. work dir, hand-over to the spare
  child the warm template prepared (namespaces, root, work dir bound in, privileges dropped, seccomp
  filter: all before the candidate was known), rlimits, the candidate, result.json, the trusted scorer.
  Its first call (which starts the fork server) is excluded from the statistics and shown apart.
- warm executor, isolate=False: the same with no namespaces, to show what they cost.
- fresh interpreter: `subprocess.run([python, "-c", "import numpy, numba; ..."])` that loads the
  candidate, calls run_packing() and prints the JSON result (what a naive evaluator does);
  also without numba, and through child.py's one-shot mode (the same sandbox, no warm template).
- in-process: run_packing() called directly in this process, the floor no evaluator beats.

The targets: warm median <= 20 ms per isolated candidate, and >= 20x cheaper than the
numpy+numba fresh interpreter. After the table: the phases of the isolated warm path timed from the
outside (instance methods wrapped), then the phases inside the child (bench/child_phases.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

from _common import cpu_shares, machine_ticks, own_ticks  # bench/_common.py, next to this script
from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.child import SANDBOX_ID, runs_as_root
from evomcp.evaluators.sandbox import CHILD_SCRIPT, Limits, child_environment, hand_over
from evomcp.evaluators.task import Task, resolve_task
from evomcp.tools.perturb import perturb

TASK = "circle_packing_26"

NAIVE = """
import importlib.util, json, sys
import numpy{extra}
spec = importlib.util.spec_from_file_location("candidate", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
centers, radii = module.run_packing()
print(json.dumps({{"centers": numpy.asarray(centers).tolist(), "radii": numpy.asarray(radii).tolist()}}))
"""


class CpuShare:
    """How busy the machine's CPUs were, and how much of that was this process and its reaped children."""

    def __init__(self) -> None:
        self.start = (*machine_ticks(), own_ticks())

    def report(self) -> str:
        busy, ours, others = cpu_shares(self.start, (*machine_ticks(), own_ticks()))
        return (f"CPU use of the machine during the run: {busy:.0%} busy, of which this benchmark "
                f"{ours:.0%} and other processes {others:.0%}")


@dataclass
class Row:
    label: str
    times_ms: list[float] = field(default_factory=list)
    first_ms: float | None = None
    note: str = ""
    failures: int = 0

    def median(self) -> float:
        return statistics.median(self.times_ms)

    def cells(self) -> str:
        t = np.array(self.times_ms)
        first = "-" if self.first_ms is None else f"{self.first_ms:.1f}"
        return (f"{self.label:44} {len(t):>5} {np.median(t):>9.2f} {np.percentile(t, 90):>8.2f} {t.min():>8.2f} "
                f"{t.mean():>8.2f} {first:>9}  {self.note}")


def variants(task: Task, count: int, seed: int) -> list[str]:
    """The seed program and up to count-1 distinct perturbed copies of it."""
    rng = np.random.default_rng(seed)
    codes = [task.initial_code]
    for _ in range(count * 20):
        if len(codes) >= count:
            break
        change = perturb(task.initial_code, rng)
        if change is not None and change[0] not in codes:
            codes.append(change[0])
    return codes


# ---------------------------------------------------------------- warm executor


class Phases:
    """Wraps methods of one executor instance (not the classes) to time the phases of each call."""

    def __init__(self, ex: LocalExecutor):
        self.samples: dict[str, list[float]] = {}
        self._current: dict[str, float] = {}
        fork = ex._fork
        self._wrap_async(fork, "run", "fork server round trip")
        self._wrap_async(ex, "_judge", "trusted scorer (_judge)")
        self._wrap_sync(fork.cgroups, "create", "cgroup create")
        self._wrap_sync(fork.cgroups, "remove", "cgroup remove (kill, rmdir)")
        # the reply reader moved from ForkServer._wait to ForkServer._channel.wait; time whichever exists
        owner = getattr(fork, "_channel", None) if hasattr(getattr(fork, "_channel", None), "wait") else fork
        attr = "wait" if owner is not fork else "_wait"
        original_wait = getattr(owner, attr, None)
        if original_wait is None:
            return

        async def timed_wait(request_id, key, timeout):
            start = time.perf_counter()
            try:
                return await original_wait(request_id, key, timeout)
            finally:
                name = "send, hand-over, until the pid reply" if key == "pid" else "child runs, until its done reply"
                self._add(name, time.perf_counter() - start)

        setattr(owner, attr, timed_wait)

    def _add(self, name: str, seconds: float) -> None:
        self._current[name] = self._current.get(name, 0.0) + seconds * 1e3

    def _wrap_async(self, obj, attr: str, name: str) -> None:
        original = getattr(obj, attr)

        async def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - start)

        setattr(obj, attr, wrapped)

    def _wrap_sync(self, obj, attr: str, name: str) -> None:
        original = getattr(obj, attr)

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - start)

        setattr(obj, attr, wrapped)

    def start(self) -> None:
        self._current = {}

    def finish(self, total_ms: float, keep: bool) -> None:
        if keep:
            self._current["total (evaluate, from outside)"] = total_ms
            for name, value in self._current.items():
                self.samples.setdefault(name, []).append(value)
        self._current = {}


async def warm_row(label: str, task: Task, codes: list[str], n: int, isolate: bool,
                   phases: bool) -> tuple[Row, Phases | None]:
    row = Row(label)
    async with LocalExecutor(slots=1, isolate=isolate) as ex:
        timer = Phases(ex) if phases else None
        kinds = set()
        for i in range(n + 1):
            code = codes[i % len(codes)]
            if timer:
                timer.start()
            start = time.perf_counter()
            report = await ex.evaluate(task, code)
            elapsed = (time.perf_counter() - start) * 1e3
            if timer:
                timer.finish(elapsed, keep=i > 0)
            if report.failed:
                row.failures += 1
            kinds.add(report.isolation)
            if i == 0:
                row.first_ms = elapsed
            else:
                row.times_ms.append(elapsed)
    row.note = f"isolation: {', '.join(sorted(kinds))}"
    return row, timer


# ---------------------------------------------------------------- fresh interpreters


def naive_row(label: str, codes: list[str], n: int, with_numba: bool) -> Row:
    row = Row(label)
    script = NAIVE.format(extra=", numba" if with_numba else "")
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        for i in range(n):
            start = time.perf_counter()
            path = Path(tmp) / f"candidate_{i}.py"
            path.write_text(codes[i % len(codes)])
            done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, timeout=120)
            try:
                radii = json.loads(done.stdout)["radii"]
                ok = done.returncode == 0 and len(radii) == 26
            except ValueError:
                ok = False
            row.times_ms.append((time.perf_counter() - start) * 1e3)
            row.failures += not ok
    row.note = "subprocess.run(python -c ...), JSON on stdout, no scoring"
    return row


def oneshot_row(label: str, codes: list[str], n: int) -> Row:
    """child.py in one-shot mode: a fresh interpreter that applies the same sandbox (no cgroup)."""
    row = Row(label)
    limits = Limits(timeout_s=30).rlimits()
    for i in range(n):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-oneshot-") as tmp:
            workdir = Path(tmp) / "eval"  # a work directory in a work root of its own, as the fork server has
            workdir.mkdir()
            program = workdir / "program.py"
            program.write_text(codes[i % len(codes)])
            if runs_as_root():
                hand_over(workdir, SANDBOX_ID)
            spec = {"kind": "entry", "entry": "run_packing", "program_path": str(program), "workdir": str(workdir),
                    "env": child_environment(workdir), "limits": limits, "isolate": True, "hide": []}
            subprocess.run([sys.executable, "-I", str(CHILD_SCRIPT)], input=json.dumps(spec).encode(),
                           capture_output=True, timeout=120, start_new_session=True)
            try:
                result = json.loads((workdir / "result.json").read_text())
                ok = bool(result.get("ok"))
                row.note = f"python -I child.py < spec; isolation: {result.get('isolation')}"
            except (OSError, ValueError):
                ok = False
        row.times_ms.append((time.perf_counter() - start) * 1e3)
        row.failures += not ok
    return row


def inprocess_row(codes: list[str], n: int) -> Row:
    row = Row("in-process run_packing() (no sandbox, floor)")
    modules = []
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        for i, code in enumerate(codes):
            path = Path(tmp) / f"candidate_{i}.py"
            path.write_text(code)
            spec = importlib.util.spec_from_file_location(f"bench_candidate_{i}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules.append(module)
    for i in range(n):
        start = time.perf_counter()
        modules[i % len(modules)].run_packing()
        row.times_ms.append((time.perf_counter() - start) * 1e3)
    row.note = "the candidate's own compute"
    return row


# ---------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> None:
    cpu = CpuShare()
    task = resolve_task(TASK)
    codes = variants(task, args.variants, args.seed)
    print(f"{TASK}: {len(codes)} candidates (seed + perturb variants), evaluated one at a time; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f}\n")

    rows: list[Row] = []
    warm, timer = await warm_row("warm executor (LocalExecutor, isolated)", task, codes, args.n, True,
                                 phases=not args.no_phases)
    rows.append(warm)
    if not args.skip_no_isolation:
        rows.append((await warm_row("warm executor, isolate=False", task, codes, args.n, False, False))[0])
    naive = naive_row("fresh interpreter: numpy + numba (baseline)", codes, args.baseline_n, True)
    rows.append(naive)
    naive_numpy = None
    if not args.skip_extra_baselines:
        naive_numpy = naive_row("fresh interpreter: numpy only", codes, args.baseline_n, False)
        rows.append(naive_numpy)
        rows.append(oneshot_row("fresh interpreter: child.py one-shot", codes, args.baseline_n))
    rows.append(inprocess_row(codes, max(args.n, 50)))

    header = (f"{'row':44} {'n':>5} {'median ms':>9} {'p90 ms':>8} {'min ms':>8} {'mean ms':>8} "
              f"{'first ms':>9}  notes")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row.cells())
    failures = {row.label: row.failures for row in rows if row.failures}
    if failures:
        print(f"\nruns without a usable result (invalid packings still count as results): {failures}")

    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; {cpu.report()}")
    ratio = naive.median() / warm.median()
    print(f"baseline / warm (medians):            {ratio:6.1f}x   target >= 20x: "
          f"{'met' if ratio >= 20 else 'MISSED'}")
    if naive_numpy is not None:
        print(f"numpy-only interpreter / warm:        {naive_numpy.median() / warm.median():6.1f}x")
    if len(rows) > 1 and rows[1].label.endswith("isolate=False"):
        print(f"namespaces cost (isolated - not):     {warm.median() - rows[1].median():6.2f} ms per candidate")
    print(f"warm median per isolated candidate:   {warm.median():6.2f} ms  target <= 20 ms: "
          f"{'met' if warm.median() <= 20 else 'MISSED'}")

    if timer is not None:
        print("\nphases of the isolated warm path (ms per candidate, first call excluded; nested phases are "
              "part of the round trip):")
        total = timer.samples["total (evaluate, from outside)"]
        order = ["total (evaluate, from outside)", "fork server round trip", "cgroup create",
                 "send, hand-over, until the pid reply", "child runs, until its done reply",
                 "cgroup remove (kill, rmdir)", "trusted scorer (_judge)"]
        print(f"  {'phase':36} {'median':>8} {'p90':>8} {'share':>7}")
        for name in order:
            values = timer.samples.get(name)
            if values:
                print(f"  {name:36} {statistics.median(values):8.2f} {np.percentile(values, 90):8.2f} "
                      f"{statistics.median(values) / statistics.median(total):7.0%}")
        rest = [t - timer.samples["fork server round trip"][i] - timer.samples["trusted scorer (_judge)"][i]
                for i, t in enumerate(total)]
        print(f"  {'rest: temp dir, write, rmtree, report':36} {statistics.median(rest):8.2f} "
              f"{np.percentile(rest, 90):8.2f} {statistics.median(rest) / statistics.median(total):7.0%}")

    if not args.no_child_phases:
        import child_phases  # bench/child_phases.py, next to this script

        script = str(Path(child_phases.__file__))
        done = subprocess.run([sys.executable, script, "--json", "--n", str(min(args.n, 200))],
                              capture_output=True, text=True)
        print()
        if done.returncode == 0:
            print(child_phases.table(json.loads(done.stdout), "inside the isolated child (bench/child_phases.py: this "
                                     "timing harness plays the template)"))
        else:
            print(f"bench/child_phases.py failed: {done.stderr.strip()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="timed calls per warm-executor row (plus one first call)")
    parser.add_argument("--baseline-n", type=int, default=30, help="calls per fresh-interpreter row")
    parser.add_argument("--variants", type=int, default=10, help="distinct candidates cycled through")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturb variants")
    parser.add_argument("--skip-no-isolation", action="store_true", help="leave out the isolate=False row")
    parser.add_argument("--skip-extra-baselines", action="store_true",
                        help="leave out the numpy-only and child.py one-shot rows")
    parser.add_argument("--no-phases", action="store_true", help="do not time the phases of the warm path")
    parser.add_argument("--no-child-phases", action="store_true",
                        help="do not run bench/child_phases.py (phases inside the child)")
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
