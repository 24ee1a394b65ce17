"""Where the time goes inside one sandboxed child (circle_packing_26 seed), phase by phase.

Run: .venv/bin/python bench/child_phases.py [--n 200] [--no-isolate] [--cgroup template|per-child|none] [--json]
(bench/eval_cost.py runs it too, and prints its table under the executor's phases.)

The fork server cannot be timed from inside without changing it, so a forked process of this script
plays the template: it holds numpy only (as `child.py --serve numpy` does) and evaluators/child.py
loaded by path, with the child's steps wrapped in time.perf_counter stamps (the clock is shared
across fork). For each candidate it forks a child the way the template forks a spare (as PID 1 of a
new PID namespace where it is root), which prepares and locks itself down in its work directory as a
spare does before its candidate is known, then runs the candidate at once with the spec the executor
would send (same environment, rlimits, hidden paths); fork -> reaped is timed. In the executor the
rows above "the candidate is handed over" run ahead, off the answer's path. Pids cgroup: by default
the template sits in one that its children inherit, as the executor does; `per-child` moves each
child into a fresh one (writing cgroup.procs), as the executor once did, to show why that changed.
"""

from __future__ import annotations

import argparse
import builtins
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy  # noqa: F401 - preloaded like the warm template, so forks inherit it

EVALUATORS = Path(__file__).resolve().parent.parent / "evaluators"
SEED = EVALUATORS / "tasks" / "circle_packing" / "initial.py"
WARMUP = 3
# the sandbox's steps in child.py, in order, with what each row of the table calls them; the spare child
# of the real template does all of them before its candidate is known (_become_pid_one: without root only)
PHASES = ("_unshare", "_become_pid_one", "_build_root", "_make_output_files", "_enter_workdir", "_drop_privileges",
          "_harden")
LABELS = {"_unshare": "unshare the namespaces", "_become_pid_one": "fork to be PID 1 (without root)",
          "_build_root": "build the root, pivot", "_make_output_files": "make the output files",
          "_enter_workdir": "bind the work dir in, read-only", "_drop_privileges": "uid 65534 / drop capabilities",
          "_harden": "no_new_privs, seccomp filter"}

# What the executor would put in the spec, asked of the product in a separate interpreter so that
# this (forking) process stays as small as the template.
_SPEC_PARTS = """
import json
from pathlib import Path
from evomcp.evaluators.sandbox import SECRET_PATHS, Limits, base_environment
from evomcp.evaluators.task import resolve_task
task = resolve_task("circle_packing_26")
limits = Limits(timeout_s=task.timeout_s, address_space_bytes=task.memory_mb * 1024**2).rlimits()
print(json.dumps({"env": base_environment(), "limits": limits, "entry": task.entry, "code": task.initial_code,
                  "hide": [str(Path.home() / p) for p in SECRET_PATHS]}))
"""


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Stamps:
    """Wraps functions of the child module so that each records when it starts and ends."""

    def __init__(self, child) -> None:
        self.t: dict[str, float] = {}
        for name in PHASES + ("_take_real_uid", "_apply_limits", "_outcome"):
            self._wrap(child, name)
        stamps = self

        class TimedFile:  # the child writes its pid to cgroup.procs with open(): time that write
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def write(self, data):
                return self.f.write(data)

            def __exit__(self, *exc):
                self.f.close()
                stamps.t["cgroup<"] = time.perf_counter()

        def timed_open(path, *args, **kwargs):
            if str(path).endswith("cgroup.procs"):
                stamps.t["cgroup>"] = time.perf_counter()
                return TimedFile(builtins.open(path, *args, **kwargs))
            return builtins.open(path, *args, **kwargs)

        child.open = timed_open  # a module global shadows the builtin inside child.py only

    def _wrap(self, child, name: str) -> None:
        original = getattr(child, name)

        def wrapped(*args, **kwargs):
            self.t[name + ">"] = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.t[name + "<"] = time.perf_counter()
                if name == "_outcome":  # still in the child, in its workdir: leave the stamps there
                    with builtins.open("stamps.json", "w") as f:
                        json.dump(self.t, f)

        setattr(child, name, wrapped)


def measure(n: int, isolate: bool, cgroup_mode: str) -> dict[str, list[float]]:
    """Fork a timing template (in one pids cgroup unless told otherwise) and collect its phases."""
    parts = json.loads(subprocess.run([sys.executable, "-c", _SPEC_PARTS], capture_output=True, check=True,
                                      text=True).stdout)
    child = load("evomcp_bench_child", EVALUATORS / "child.py")
    cgroups = load("evomcp_bench_cgroups", EVALUATORS / "cgroups.py").PidsCgroups(512)
    shared = cgroups.create(f"bench-template-{os.getpid()}") if cgroup_mode == "template" else None
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the timing template
        try:
            os.close(out_r)
            os.close(go_w)
            os.read(go_r, 1)  # wait until it sits in its cgroup
            phases = _template_loop(n, isolate, cgroups if cgroup_mode == "per-child" else None, child, parts)
            data = json.dumps(phases).encode()
            while data:
                data = data[os.write(out_w, data):]
        finally:
            os._exit(0)
    os.close(out_w)
    os.close(go_r)
    if shared is not None:
        (shared / "cgroup.procs").write_text(str(pid))
    os.write(go_w, b"x")
    chunks = []
    while chunk := os.read(out_r, 1 << 16):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    if shared is not None:
        cgroups.remove(shared)
    return json.loads(b"".join(chunks) or b"{}")


def _template_loop(n: int, isolate: bool, cgroups, child, parts) -> dict[str, list[float]]:
    stamps = Stamps(child)
    child._SECCOMP = child.seccomp_filter()  # what child.serve() prepares once
    child.VIEW = child.sandbox_view()
    child._FILE_COPIES = child._read_small_files(child.VIEW)
    if child.runs_as_root():
        child._OWN_PID_NS = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    phases: dict[str, list[float]] = {}
    for i in range(n + WARMUP):
        work_root = Path(tempfile.mkdtemp(prefix="evomcp-bench-child-"))
        work_root.chmod(0o711)
        workdir = work_root / "eval"  # a work directory in a work root, as the fork server makes them
        workdir.mkdir()
        program = workdir / "program.py"
        program.write_text(parts["code"])
        if child.runs_as_root():  # what sandbox.hand_over does
            for path in (program, workdir):
                os.chown(path, child.SANDBOX_ID, child.SANDBOX_ID)
        cgroup = cgroups.create(f"bench-{os.getpid()}-{i}") if cgroups else None
        env = {**parts["env"], "HOME": str(workdir), "TMPDIR": str(workdir), "NUMBA_CACHE_DIR": str(workdir / ".numba")}
        spec = {"kind": "entry", "entry": parts["entry"], "program_path": str(program), "workdir": str(workdir),
                "env": env, "limits": parts["limits"], "isolate": isolate, "hide": parts["hide"],
                "cgroup": str(cgroup) if cgroup else None}
        stamps.t = {}
        t0 = time.perf_counter()
        pid, pid_one = child._fork(child._key(spec))
        if pid == 0:
            stamps.t["start"] = time.perf_counter()
            _spare(child, spec, pid_one, stamps)  # never returns
        forked = time.perf_counter()
        os.waitpid(pid, 0)
        reaped = time.perf_counter()
        if cgroups:
            cgroups.remove(cgroup)
        try:
            t = json.loads((workdir / "stamps.json").read_text())
            ok = json.loads((workdir / "result.json").read_text()).get("ok")
        except (OSError, ValueError):
            t, ok = {}, False
        shutil.rmtree(work_root, ignore_errors=True)
        if not ok or i < WARMUP:
            continue
        first = next((t[p + ">"] for p in PHASES if p + ">" in t), t["_apply_limits>"])
        row = {
            "fork (in the parent)": forked - t0,
            "fork (parent) -> child starts": t["start"] - t0,
            "setup: session, signals (cgroup move)": first - t["start"],
        }
        if "cgroup>" in t:
            row["  of which the cgroup.procs write"] = t["cgroup<"] - t["cgroup>"]
        for phase in PHASES:
            if phase + "<" in t:
                row[LABELS[phase]] = t[phase + "<"] - t[phase + ">"]
        row["-- the candidate is handed over here --"] = 0.0
        if "_take_real_uid<" in t:
            row["take the real uid 65534"] = t["_take_real_uid<"] - t["_take_real_uid>"]
        row["rlimits"] = t["_apply_limits<"] - t["_apply_limits>"]
        row["candidate: import, run_packing(), to JSON"] = t["_outcome<"] - t["_outcome>"]
        row["write result, exit, teardown, reaped"] = reaped - t["_outcome<"]
        row["after the hand-over: -> result, exit, reaped"] = reaped - t["ready"]
        row["total: fork -> reaped"] = reaped - t0
        for name, seconds in row.items():
            phases.setdefault(name, []).append(seconds * 1e3)
    return phases


def _spare(child, spec, pid_one: bool, stamps: Stamps) -> None:
    """What a spare of the template does (child._child_main with a work directory made ahead), then its
    candidate at once: never returns."""
    try:
        if spec.get("cgroup"):
            with open(os.path.join(spec["cgroup"], "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        mode, alive_r = child._prepare(child._key(spec), pid_one)
        locked = None
        if mode != "none":
            child._make_output_files(spec["workdir"], mode)
            child._lock_down(spec["workdir"], mode, alive_r, None, ahead=True)
            alive_r, locked = None, spec["workdir"]
        stamps.t["ready"] = time.perf_counter()
        child._run(spec, (mode, alive_r, locked), None)
    finally:
        os._exit(70)


def table(phases: dict[str, list[float]], title: str) -> str:
    if not phases:
        return f"{title}: no successful child"
    total = statistics.median(phases["total: fork -> reaped"])
    lines = [f"{title} ({len(phases['total: fork -> reaped'])} children, ms):",
             f"  {'phase':44} {'median':>7} {'p90':>7} {'max':>7} {'share':>6}  {'> 5 ms':>7}"]
    for name, values in phases.items():
        ordered = sorted(values)
        slow = sum(v > 5 for v in values) / len(values)
        lines.append(f"  {name:44} {statistics.median(values):7.2f} {ordered[int(0.9 * (len(values) - 1))]:7.2f} "
                     f"{ordered[-1]:7.2f} {statistics.median(values) / total:6.0%}  {slow:7.0%}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="children timed (after 3 warm-up ones)")
    parser.add_argument("--no-isolate", action="store_true", help="no namespaces (isolate=False)")
    parser.add_argument("--cgroup", choices=("template", "per-child", "none"), default="template",
                        help="pids cgroup: one for the template that children inherit (the executor's way), "
                             "a fresh one per child (the executor's former way), or none")
    parser.add_argument("--json", action="store_true", help="print the raw phase lists as JSON")
    args = parser.parse_args()
    phases = measure(args.n, not args.no_isolate, args.cgroup)
    if args.json:
        print(json.dumps(phases))
    else:
        print(table(phases, f"inside one child, isolate={not args.no_isolate}, pids cgroup: {args.cgroup}"))


if __name__ == "__main__":
    main()
