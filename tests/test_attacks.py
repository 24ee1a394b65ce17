"""A hostile candidate tries to get out of the sandbox, one class of escape at a time.

Every attack is proposed through the tools like any other program (a circle_packing_26 run with the
attack inside run_packing(), or a small task folder of the user's), in every sandbox level: children
with namespaces of their own, and the bubblewrap sandbox ($EVOMCP_BWRAP=always). The candidate
reports what it managed to do as data (a JSON "REPORT" in its error and its stdout), so a failure
says what got out. After each attack the same checks run (`Arena.aftermath`): an honest candidate
still scores exactly what the seed scored, the archive is intact and holds no forged score and no
secret, no process of the attack is left, and no file changed outside the work directory (the venv's
site-packages, the evomcp packages with their caches, the task folder, HOME and the archive's
folder are snapshotted before and compared after). Attacks meant to persist are also checked
against a newly started server, scorer and template.

The secrets are canary strings. Whatever an attack manages to change in shared places (a .pth file,
the scorer's caches) is put back when the test ends.
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from conftest import DATA
from evomcp.evaluators import bundles
from evomcp.evaluators.task import BUILTIN_TASKS
from evomcp.testing import procs
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.workspace import open_workspace
from test_adversarial import propose, sandbox  # noqa: F401 - sandbox: the fixture, one run per level

# canaries: none of them may ever reach a candidate or the archive
SECRET = "sk-attacks-canary-api-key-5f1e2d90"
SSH_CANARY = "ssh-canary-private-key-7c4b11"
HOME_CANARY = "home-canary-file-31a9c0"
CRED_CANARY = "cred-canary-json-8d20fe"
OUTSIDE_CANARY = "outside-task-canary-66e1ab"
CANARIES = {"API key": SECRET, "SSH key": SSH_CANARY, "canary file in HOME": HOME_CANARY,
            "credentials file": CRED_CANARY, "file outside the task folder": OUTSIDE_CANARY}

ATTACK_TAG = "evomcp-attack-payload"  # in every payload an attack writes, so that it can be found and undone
MARK_PREFIX = "evoatk"  # the process name (comm) the attacks' processes give themselves
CONFIG = {"timeout_s": 10, "novelty": False}
BUDGET_S = 240  # per test
BLOCKED_AFTER_S = 8  # a proposal not back by then has the server stuck (on a FIFO, say)
CIRCLES = "circle_packing_26"
BEST_CIRCLES = BUILTIN_TASKS[CIRCLES].target_score


def _package_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
PACKAGE_DIRS = {name: _package_dir(name) for name in
                ("evomcp", "evomcp.evaluators", "evomcp.tools", "evomcp.store", "evomcp.server")}
KERNELS = Path(importlib.util.find_spec("evomcp.evaluators.tasks.circle_packing.kernel").origin)
PACKAGE_CACHE = KERNELS.parent / "__pycache__"  # numba's default cache of the scorer's kernels, and bytecode
SCORING = Path(importlib.util.find_spec("evomcp.evaluators.tasks.circle_packing").origin)  # its scorer
SCORING_PYC = Path(importlib.util.cache_from_source(str(SCORING)))

# Bytecode for every module of the packages, so that importing one during a test writes nothing there
for _folder in PACKAGE_DIRS.values():
    compileall.compile_dir(str(_folder), quiet=2)  # where the folder is not ours to write, nothing to do


# ---------------------------------------------------------------- helpers


def fill(template: str, **values) -> str:
    """`template` with each @NAME@ replaced by repr(value)."""
    for key, value in values.items():
        template = template.replace(f"@{key}@", repr(value))
    left = re.findall(r"@[A-Z_]+@", template)
    assert not left, f"unfilled {left}"
    return template


def user_code(seed_code: str, body: str) -> str:
    """A task folder's seed with its EVOLVE-BLOCK replaced by `body`."""
    before, rest = seed_code.split("# EVOLVE-BLOCK-START\n")
    after = rest.split("# EVOLVE-BLOCK-END\n")[1]
    return before + "# EVOLVE-BLOCK-START\n" + textwrap.dedent(body).strip("\n") + "\n# EVOLVE-BLOCK-END\n" + after


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace(",", "")).strip("-")


def report_of(program) -> dict:
    """What the candidate said it managed: the JSON after REPORT in its stdout or its error."""
    if program is None:
        return {}
    for text in (program.stdout_tail or "", program.error or ""):
        start = text.find("REPORT{")
        if start >= 0:
            try:
                return json.JSONDecoder().raw_decode(text, start + len("REPORT"))[0]
            except ValueError:
                continue
    return {}


def reported(program, problems: list[str]) -> dict:
    """report_of(program); a candidate that reported nothing is a problem of its own (the attack did not
    run as written, so the test would prove nothing)."""
    report = report_of(program)
    if not report:
        problems.append(f"the candidate reported nothing (error {program and program.error!r}, "
                        f"stderr {program and (program.stderr_tail or '')[-300:]!r})")
    return report


def refused(value) -> bool:
    """A step of an attack that did not work: refused, or read nothing."""
    return value in (None, "", [], 0) or (isinstance(value, str) and value.startswith(("refused", "killed")))


def marked(prefix: str = MARK_PREFIX) -> dict[int, str]:
    """Live processes whose name starts with `prefix`, described for a failure message."""
    return {pid: procs.describe(pid) for pid in procs.named(prefix)}


async def marked_after(seconds: float, prefix: str = MARK_PREFIX) -> dict[int, str]:
    """The marked processes still alive `seconds` from now (or as soon as there are none)."""
    with anyio.move_on_after(seconds):
        while marked(prefix):
            await anyio.sleep(0.05)
    return marked(prefix)


def kill_marked(prefix: str = MARK_PREFIX) -> None:
    """SIGKILL the processes an attack started (found by their name), and wait for them to go."""
    for _ in range(50):
        found = marked(prefix)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        threading.Event().wait(0.05)


def describe_exception(exc: BaseException) -> str:
    """An exception for a failure message; the leaves of an exception group, not the group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_exception(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def status_fields(pid: int | str, keys=("Uid", "Gid", "CapEff", "NoNewPrivs", "Seccomp")) -> dict[str, list[str]]:
    return {key: value.split() for key, value in procs.status(pid).items() if key in keys}


@contextmanager
def address_space_cap(extra: int = 4 * 1024**3):
    """Cap this process's address space a few GB above what it uses, so that a server reading an endless
    file (/dev/zero) fails with MemoryError instead of taking the machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(procs.status("self")["VmSize"].split()[0]) * 1024
    cap = used + extra if hard == resource.RLIM_INFINITY else min(used + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class ServerBlocked(Exception):
    pass


class Watchdog:
    """If a proposal is not back after BLOCKED_AFTER_S, the server is stuck: open, for writing, the FIFOs
    a candidate left in work directories (a server blocked opening one goes on, reads EOF), then, if it
    is still stuck, interrupt the main thread with a signal whose handler raises ServerBlocked."""

    def __init__(self, roots, after: float = BLOCKED_AFTER_S, interrupt_after: float = 45.0):
        self.roots = roots
        self.after = after
        self.interrupt_after = interrupt_after
        self.actions: list[str] = []
        self._done = threading.Event()

    def __enter__(self):
        self._main = threading.main_thread().ident
        self._previous = signal.signal(signal.SIGUSR1, self._raise)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self._thread.join()
        signal.signal(signal.SIGUSR1, self._previous)

    @staticmethod
    def _raise(*_):
        raise ServerBlocked("the server was blocked; the test interrupted it")

    def _fifos(self) -> list[str]:
        found = []
        for root in self.roots():
            try:
                entries = [e for e in os.listdir(root) if e.startswith("evomcp-")]
            except OSError:
                continue
            for entry in entries:
                top = os.path.join(root, entry)
                for dirpath, dirnames, filenames in os.walk(top):
                    if dirpath.count(os.sep) - top.count(os.sep) >= 2:
                        dirnames[:] = []
                    for name in filenames:
                        path = os.path.join(dirpath, name)
                        try:
                            if stat.S_ISFIFO(os.lstat(path).st_mode):
                                found.append(path)
                        except OSError:
                            pass
        return found

    def _release(self) -> None:
        for fifo in self._fifos():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only while a reader waits
                self.actions.append(f"opened the FIFO {fifo} the server was blocked on")
            except OSError:
                pass

    def _watch(self) -> None:
        if self._done.wait(self.after):
            return
        self._release()
        if self._done.wait(self.interrupt_after - self.after):
            return
        for _ in range(10):
            self._release()
            self.actions.append("interrupted the server's main thread")
            signal.pthread_kill(self._main, signal.SIGUSR1)
            if self._done.wait(2.0):
                return


# ---------------------------------------------------------------- files outside the work directory


def _snapshot(root: Path, ignore: set[str]) -> dict[str, tuple[int, int, int]]:
    """path -> (size, mtime_ns, mode) of everything under root (links not followed)."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if path in ignore:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            entries[path] = (0 if stat.S_ISDIR(st.st_mode) else st.st_size, st.st_mtime_ns, st.st_mode)
    return entries


def _holds_payload(path: str) -> bool:
    if ATTACK_TAG.replace("-", "_") in os.path.basename(path):
        return True
    try:
        with open(path, "rb") as f:
            return ATTACK_TAG.encode() in f.read(1 << 20)
    except OSError:
        return False


class TreeGuard:
    """Snapshots of the writable trees that matter; says what changed, and puts back what an attack wrote
    (files in __pycache__ folders of the packages, files holding a payload), never anything else."""

    def __init__(self, trees: dict[str, Path], ignore: set[str]):
        self.trees = {label: Path(root) for label, root in trees.items() if Path(root).is_dir()}
        self.ignore = ignore
        self.before = {label: _snapshot(root, ignore) for label, root in self.trees.items()}
        self.backup: dict[str, dict[str, bytes]] = {}  # label -> path -> bytes, for the packages
        for label, entries in self.before.items():
            if label.startswith("package"):
                self.backup[label] = {path: Path(path).read_bytes()
                                      for path, (_, _, mode) in entries.items() if stat.S_ISREG(mode)}

    def changes(self) -> list[str]:
        lines = []
        for label, root in self.trees.items():
            before, now = self.before[label], _snapshot(root, self.ignore)
            added, removed = sorted(now.keys() - before.keys()), sorted(before.keys() - now.keys())
            touched = added + removed
            changed = [p for p in sorted(before.keys() & now.keys()) if before[p] != now[p]
                       and not (stat.S_ISDIR(now[p][2]) and before[p][2] == now[p][2]
                                and any(t.startswith(p + "/") for t in touched))]
            diffs = ([f"added {p}" for p in added] + [f"removed {p}" for p in removed]
                     + [f"changed {p} (size {before[p][0]} -> {now[p][0]}, mode {before[p][2]:o} -> {now[p][2]:o})"
                        for p in changed])
            if diffs:
                more = f"; and {len(diffs) - 6} more" if len(diffs) > 6 else ""
                lines.append(f"files changed outside the work dir, in {label}: " + "; ".join(diffs[:6]) + more)
        return lines

    def restore(self) -> None:
        for label, root in self.trees.items():
            before, now = self.before[label], _snapshot(root, self.ignore)
            package = label.startswith("package")
            for path in sorted(now.keys() - before.keys(), reverse=True):
                if (package and "__pycache__" in Path(path).parts) or _holds_payload(path):
                    if stat.S_ISDIR(now[path][2]):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
            for path, data in self.backup.get(label, {}).items():
                if now.get(path) == before[path]:
                    continue
                if "__pycache__" in Path(path).parts or _holds_payload(path):
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    elif os.path.lexists(path):
                        os.unlink(path)
                    Path(path).write_bytes(data)
                    os.chmod(path, stat.S_IMODE(before[path][2]))
                    os.utime(path, ns=(before[path][1], before[path][1]))


# ---------------------------------------------------------------- the arena: a workspace, a run, the checks


def make_home(home: Path) -> Path:
    """A HOME holding a canary file, an SSH key and a credentials file (canaries all)."""
    (home / ".ssh").mkdir(parents=True)
    (home / "canary.txt").write_text(HOME_CANARY + "\n")
    key = home / ".ssh" / "id_rsa"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SSH_CANARY}\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    gcloud = home / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    # shaped so that a server that reads it as a result or as metrics would show it
    (gcloud / "application_default_credentials.json").write_text(json.dumps(
        {"ok": False, "error": CRED_CANARY, "client_secret": CRED_CANARY, "text_feedback": CRED_CANARY,
         "type": "authorized_user"}))
    return home


def task_folder(source: Path, target: Path, token: str) -> Path:
    shutil.copytree(source, target)
    (target / "token.txt").write_text(token + "\n")  # its own content digest
    return target


class Arena:
    def __init__(self, tmp_path: Path, home: Path, sandbox: str):
        self.tmp = tmp_path
        self.home = home
        self.sandbox = sandbox
        self.db = tmp_path / "archive" / "archive.db"
        self.db.parent.mkdir()
        self.mark = MARK_PREFIX + secrets.token_hex(4)  # 14 characters: a process name fits 15
        self.ws = None
        self.run_id: int | None = None
        self.seed = None
        self.seed_score: float | None = None
        self.task = CIRCLES
        self.task_dir: Path | None = None
        self.guard: TreeGuard | None = None
        self.extra_trees: dict[str, Path] = {}
        self.cleanups: list = []
        self.helpers: set[int] = set()  # processes the test itself started (not the evaluation's)
        self._honest = 0

    # -- set-up

    def trees(self) -> dict[str, Path]:
        trees = {"site-packages": SITE_PACKAGES, **{f"package {n}": p for n, p in PACKAGE_DIRS.items()},
                 "HOME": self.home, "the archive's folder": self.db.parent}
        if self.task_dir is not None:
            trees["the task folder"] = self.task_dir
        for folder in scorer_caches()[1:]:  # the scorer's own cache, unless it is under HOME already
            if not folder.startswith(str(self.home) + "/"):
                trees["the scorer's cache"] = Path(folder)
        return {**trees, **self.extra_trees}

    def watch_files(self) -> None:
        if self.guard is None:
            db = str(self.db)
            self.guard = TreeGuard(self.trees(), {db, db + "-wal", db + "-shm", db + "-journal"})

    async def start(self, task: str = CIRCLES, task_dir: Path | None = None) -> None:
        self.task, self.task_dir = task, task_dir
        with anyio.fail_after(120):
            status = await runs.start_run(self.ws, task, config=CONFIG)
        self.run_id = status.run.run_id
        self.seed = await self.ws.program(self.run_id, status.best.id)
        assert self.seed.correct, f"the seed failed before any attack: {self.seed.error}"
        self.seed_score = self.seed.combined_score
        self.watch_files()

    def work_roots(self) -> list[str]:
        roots = [tempfile.gettempdir()]
        fork = getattr(self.ws.executor, "_fork", None)
        if getattr(fork, "work_root", None) is not None:
            roots.append(str(fork.work_root))
        return roots

    # -- proposing

    def _last_program_id(self) -> int:
        with self._db() as con:
            (last,) = con.execute("SELECT COALESCE(MAX(id), 0) FROM programs WHERE run_id = ?",
                                  (self.run_id,)).fetchone()
        return last

    def _db(self):
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)

    async def attempt(self, body: str | None = None, code: str | None = None, seconds: float = 40.0):
        """Propose an attack (a circle-packing `body`, or a whole program `code`) through the tools.

        Returns (the stored program or None, problems): the proposal raising, the server blocked, the
        program left pending."""
        problems = []
        last = self._last_program_id()
        watchdog = Watchdog(self.work_roots)
        try:
            with address_space_cap(), watchdog:
                with anyio.fail_after(seconds):
                    if body is not None:
                        await propose(self.ws, self.run_id, self.seed, body)
                    else:
                        await steps.propose_candidate(self.ws, self.run_id, self.seed.id, code=code)
        except Exception as exc:  # noqa: BLE001 - whatever the server raises is the finding
            problems.append(f"the proposal raised {describe_exception(exc)}")
        if watchdog.actions:
            problems.append(f"the server was stuck for over {BLOCKED_AFTER_S} s; the test "
                            + ", then ".join(dict.fromkeys(watchdog.actions)))
        program = None
        newest = self._last_program_id()
        if newest > last:
            program = await self.ws.program(self.run_id, newest)
            if program.status in ("pending", "running"):
                problems.append(f"program {program.id} stays {program.status}")
        elif not problems:
            problems.append("no program was recorded")
        return program, problems

    # -- afterwards

    def impossible(self, score: float | None) -> bool:
        """A score no honest evaluation can give: above the best known packing, above 0 for the toy tasks."""
        if score is None:
            return False
        return score > (BEST_CIRCLES + 1e-9 if self.task == CIRCLES else 1e-9)

    def archive_problems(self) -> list[str]:
        problems, forged = [], []
        with self._db() as con:
            rows = con.execute("SELECT id, status, combined_score, public_metrics, private_metrics, text_feedback,"
                               " error, stdout_tail, stderr_tail FROM programs").fetchall()
        for pid, status, score, *texts in rows:
            if self.impossible(score):
                forged.append(f"{pid} ({score})")
            if status in ("pending", "running"):
                problems.append(f"program {pid} stays {status}")
            text = " ".join(str(t) for t in texts)
            problems += [f"program {pid} stores the {name}" for name, canary in CANARIES.items() if canary in text]
        if forged:
            problems.append("programs with a forged score in the archive: " + ", ".join(forged))
        return problems

    comment = "#"  # the task's comment syntax (its marker lines start with it)
    honest_s = 60  # how long an honest candidate's proposal and evaluation may take

    async def honest(self, ws, where: str) -> list[str]:
        """An honest candidate (the seed with a comment) must score exactly what the seed scored."""
        self._honest += 1
        end = f"{self.comment} EVOLVE-BLOCK-END"
        code = self.seed.code.replace(end, f"{self.comment} honest candidate {self._honest} of {self.mark}\n{end}", 1)
        try:
            with anyio.fail_after(self.honest_s):
                result = await steps.propose_candidate(ws, self.run_id, self.seed.id, code=code)
        except Exception as exc:  # noqa: BLE001
            return [f"an honest candidate {where}: the proposal raised {describe_exception(exc)}"]
        program = result.program
        if not program.correct or program.combined_score != self.seed_score:
            return [f"an honest candidate {where} scored {program.combined_score} (correct {program.correct}, "
                    f"error {program.error!r}); the seed scored {self.seed_score}"]
        return []

    async def restarted(self) -> list[str]:
        """A newly started server (new scorer, new template) on the same archive: honest work scores right,
        the run's best is not forged, and a new run of the same task starts and scores its seed right."""
        problems = []
        try:
            with anyio.fail_after(180):
                async with open_workspace(self.db, slots=1) as fresh:
                    problems += await self.honest(fresh, "in a newly started server")
                    status = await runs.get_run_status(fresh, self.run_id)
                    if status.best is not None and self.impossible(status.best.combined_score):
                        problems.append(f"a newly started server reports a forged best score "
                                        f"{status.best.combined_score} (program {status.best.id})")
                    new = await runs.start_run(fresh, self.task, config=CONFIG)
                    score = None if new.best is None else new.best.combined_score
                    if score != self.seed_score:
                        problems.append(f"a new run in a newly started server: its seed scored {score}, "
                                        f"not {self.seed_score}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"a newly started server failed: {describe_exception(exc)}")
        return problems

    async def aftermath(self, restart: bool = False) -> list[str]:
        """What must hold after any attack; returns what does not."""
        problems = []
        left = await procs.leftovers(lambda: self.ws.executor.helper_pids) - self.helpers
        if left:
            problems.append("processes left behind by the evaluation: " + procs.describe(*sorted(left)))
        alive = await marked_after(3.0, self.mark)
        if alive:
            problems.append("processes of the attack alive after its evaluation: " + "; ".join(alive.values()))
        try:
            with anyio.fail_after(30):
                check = await self.ws.archive.integrity_check()
        except Exception as exc:  # noqa: BLE001
            check = describe_exception(exc)
        if check != "ok":
            problems.append(f"archive integrity check: {check}")
        if self.run_id is not None:
            problems += self.archive_problems()
        if self.guard is not None:
            problems += self.guard.changes()
        if self.run_id is not None:
            problems += await self.honest(self.ws, "after the attack")
            if restart:
                problems += await self.restarted()
        return problems

    def teardown(self) -> None:
        kill_marked(self.mark)
        try:
            if self.guard is not None:
                self.guard.restore()
        finally:
            for cleanup in reversed(self.cleanups):
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - clean up the rest regardless
                    pass


def verdict(got_out: list[str], problems: list[str]) -> None:
    lines = [f"got out: {g}" for g in got_out] + [f"afterwards: {p}" for p in problems]
    assert not lines, "\n" + "\n".join(lines)


@pytest.fixture
async def arena(tmp_path, monkeypatch, sandbox):  # noqa: F811 - sandbox is the imported fixture
    home = make_home(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))  # before the workspace starts: it hides HOME's secret folders
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    stage = Arena(tmp_path, home, sandbox)
    try:
        async with open_workspace(stage.db, slots=2) as ws:
            stage.ws = ws
            try:
                yield stage
            finally:
                kill_marked(stage.mark)
    finally:
        stage.teardown()


# A probe run in a forked child that reports step by step over a pipe: a child killed half-way (by a
# seccomp filter, say) still tells what it got to. `_report` hands the result back as data.
PROBE = """
import ctypes, json, os, signal

def _probe(steps):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        def say(key, value):
            os.write(w, (json.dumps({key: value}) + "\\n").encode())
        try:
            steps(say)
        except BaseException as exc:
            say("crashed", type(exc).__name__ + ": " + str(exc)[:200])
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    report = {}
    for line in b"".join(chunks).decode().splitlines():
        report.update(json.loads(line))
    if os.WIFSIGNALED(status):
        report["killed"] = signal.Signals(os.WTERMSIG(status)).name
    return report


def _report(report):
    text = json.dumps(report)
    print("REPORT" + text, flush=True)
    raise RuntimeError("REPORT" + text[:1800])


def _grab(path, size=48):
    try:
        with open(path, "rb") as f:
            return f.read(size).decode("latin-1")
    except OSError as exc:
        return "refused: " + type(exc).__name__
"""


# ---------------------------------------------------------------- 1. persistence into later processes


PTH_ATTACK = PROBE + """
import sys

def run_packing():
    done = {}
    for folder in dict.fromkeys([p for p in sys.path if p.endswith("site-packages")] + [@SITE@]):
        try:
            with open(os.path.join(folder, @NAME@), "w") as f:
                f.write(@LINE@)
            done[folder] = "written"
        except OSError as exc:
            done[folder] = "refused: " + type(exc).__name__ + " " + str(exc)
    _report(done)
"""


async def test_persistence_pth_file_in_site_packages(arena):
    """A .pth file written into the venv's site-packages would run in every later Python of that venv."""
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        marker = arena.tmp / "pwn-pth"
        name = f"zz_{ATTACK_TAG.replace('-', '_')}_{arena.mark}.pth"
        line = f"import os; open({str(marker)!r}, 'w').write(os.environ.get('OPENAI_API_KEY', '') + ' {ATTACK_TAG}')\n"
        program, problems = await arena.attempt(fill(PTH_ATTACK, SITE=str(SITE_PACKAGES), NAME=name, LINE=line))
        got_out = [f"it wrote {name} into {folder}" for folder, what in reported(program, problems).items()
                   if what == "written"]
        # the next `evomcp serve` (any Python of this venv) started with the API key in its environment
        subprocess.run([sys.executable, "-c", "pass"], env={**os.environ, "OPENAI_API_KEY": SECRET}, timeout=60)
        if marker.exists():
            got_out.append(f"a newly started Python ran it and wrote {marker.read_text()!r}")
            marker.unlink()
        problems += await arena.aftermath(restart=True)
        if marker.exists():
            got_out.append("the new server's scorer or template ran it")
    verdict(got_out, problems)


SCORER_CACHE_ATTACK = PROBE + """
import glob, marshal, pickle

class _Payload:
    def __reduce__(self):
        return exec, (@NBI_PAYLOAD@,)

def run_packing():
    done = {}
    for folder in @CACHES@:
        for path in sorted(glob.glob(folder + "/**/*.nbi", recursive=True)):  # numba unpickles each index
            try:
                with open(path, "wb") as f:
                    f.write(pickle.dumps(_Payload()))
                done[path] = "overwritten"
            except OSError as exc:
                done[path] = "refused: " + type(exc).__name__
    try:  # the scorer's bytecode: the same header (it still matches the source), code with a payload
        with open(@PYC@, "rb") as f:
            header = f.read(16)
        with open(@SCORING@) as f:
            source = f.read()
        code = compile(source + @PYC_PAYLOAD@, @SCORING@, "exec")
        with open(@PYC@, "wb") as f:
            f.write(header + marshal.dumps(code))
        done["scoring bytecode"] = "overwritten"
    except OSError as exc:
        done["scoring bytecode"] = "refused: " + type(exc).__name__
    for folder in @CACHES@:
        try:
            with open(os.path.join(folder, @ADDED@), "wb") as f:
                f.write(@TAG@.encode())
            done["new file in " + folder] = "written"
        except OSError as exc:
            done["new file in " + folder] = "refused: " + type(exc).__name__
    _report(done)
"""


def scorer_caches() -> list[str]:
    """Where the scorer's numba kernels are cached: beside the source (numba's default) and, where the
    scorer names one, its own cache folder (under the server user's HOME: the test's)."""
    from evomcp.evaluators import scorer

    folders = [str(PACKAGE_CACHE)]
    if hasattr(scorer, "numba_cache_dir"):
        folders.append(scorer.numba_cache_dir())
    return folders


async def test_persistence_scorer_caches(arena):
    """The scorer's numba cache indexes (pickles) and its bytecode in the task's __pycache__ are out of reach."""
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        caches = scorer_caches()
        nbi_marker, pyc_marker = arena.tmp / "pwn-numba", arena.tmp / "pwn-pyc"
        pyc_payload = textwrap.dedent(f"""

            _attack_score = score_circle_packing


            def score_circle_packing(value, n):  # {ATTACK_TAG}
                open({str(pyc_marker)!r}, "w").write({ATTACK_TAG!r})
                verdict = _attack_score(value, n)
                return verdict.model_copy(update={{"combined_score": 3.0}}) if verdict.correct else verdict
            """)
        body = fill(SCORER_CACHE_ATTACK, CACHES=caches, PYC=str(SCORING_PYC), SCORING=str(SCORING),
                    NBI_PAYLOAD=f"open({str(nbi_marker)!r}, 'w').write({ATTACK_TAG!r})", PYC_PAYLOAD=pyc_payload,
                    ADDED=f"zz_{ATTACK_TAG.replace('-', '_')}.pyc", TAG=ATTACK_TAG)
        program, problems = await arena.attempt(body)
        got_out = [f"{what}: {target}" for target, what in reported(program, problems).items() if not refused(what)]
        problems += await arena.aftermath(restart=True)
        if nbi_marker.exists():
            got_out.append("a newly started scorer unpickled the candidate's numba index (its payload ran)")
        if pyc_marker.exists():
            got_out.append("a newly started scorer ran the candidate's bytecode for the circle packing scorer")
    verdict(got_out, problems)


TASK_FOLDER_ATTACK = """
import json, os

def value():
    done = {}
    try:
        with open(@EVALUATE@, "a") as f:
            f.write(@PAYLOAD@)
        done["evaluate.py"] = "appended"
    except OSError as exc:
        done["evaluate.py"] = "refused: " + type(exc).__name__
    try:
        with open(os.path.join(os.path.dirname(@EVALUATE@), @ADDED@), "w") as f:
            f.write(@TAG@)
        done["new file"] = "written"
    except OSError as exc:
        done["new file"] = "refused: " + type(exc).__name__
    print("REPORT" + json.dumps(done), flush=True)
    raise RuntimeError("REPORT" + json.dumps(done))
"""

EVALUATE_PAYLOAD = f"""

_attack_evaluate = evaluate


def evaluate(program_path):  # {ATTACK_TAG}
    metrics = _attack_evaluate(program_path)
    metrics["combined_score"] = 1e9
    return metrics
"""


async def test_persistence_original_task_folder(arena):
    """A user task's candidate cannot write the ORIGINAL task folder (its evaluate.py, a new file)."""
    with anyio.fail_after(BUDGET_S):
        task = task_folder(DATA / "fn_task", arena.tmp / "task", arena.mark)
        await arena.start(str(task), task)
        code = user_code(arena.seed.code, fill(TASK_FOLDER_ATTACK, EVALUATE=str(task / "evaluate.py"),
                                               PAYLOAD=EVALUATE_PAYLOAD, ADDED="zz_evomcp_attack.py", TAG=ATTACK_TAG))
        program, problems = await arena.attempt(code=code)
        got_out = [f"{what}: {target} of the original task folder"
                   for target, what in reported(program, problems).items() if not refused(what)]
        problems += await arena.aftermath(restart=True)
    verdict(got_out, problems)


BUNDLE_ATTACK = """
import json, os

def value():
    done = {}
    try:
        with open(os.path.join(@CACHED@, "evaluate.py"), "a") as f:
            f.write(@PAYLOAD@)
        done["evaluate.py"] = "appended"
    except OSError as exc:
        done["evaluate.py"] = "refused: " + type(exc).__name__
    try:
        with open(os.path.join(@CACHED@, @ADDED@), "w") as f:
            f.write(@TAG@)
        done["new file"] = "written"
    except OSError as exc:
        done["new file"] = "refused: " + type(exc).__name__
    print("REPORT" + json.dumps(done), flush=True)
    raise RuntimeError("REPORT" + json.dumps(done))
"""


async def test_persistence_worker_bundle_cache(arena):
    """A worker's cache of unpacked task bundles (checked only when unpacked) cannot be rewritten by a
    candidate running on that machine."""
    with anyio.fail_after(BUDGET_S):
        task = task_folder(DATA / "fn_task", arena.tmp / "task", arena.mark)
        digest, data = bundles.pack(task)
        cached = bundles.unpack(digest, data)
        arena.cleanups.append(lambda: shutil.rmtree(cached, ignore_errors=True))
        arena.extra_trees["the worker bundle cache"] = cached
        await arena.start(str(task), task)
        code = user_code(arena.seed.code, fill(BUNDLE_ATTACK, CACHED=str(cached), PAYLOAD=EVALUATE_PAYLOAD,
                                               ADDED="zz_evomcp_attack.py", TAG=ATTACK_TAG))
        program, problems = await arena.attempt(code=code)
        got_out = [f"{what}: {target} of the cached bundle {cached}"
                   for target, what in reported(program, problems).items() if not refused(what)]
        if bundles.tree_digest(cached) != digest:
            got_out.append(f"the cached bundle no longer matches its digest {digest[:12]}: a worker reusing it "
                           f"runs what the candidate wrote")
        problems += await arena.aftermath()
    verdict(got_out, problems)


# ---------------------------------------------------------------- 2. unhiding what is hidden


UNHIDE_ATTACK = PROBE + """
import sqlite3

def _steps(say):
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\\\040", " ") for line in f]
    gone, kept = [], 0
    for point in reversed(points):
        if point == "/":
            continue
        if libc.umount2(point.encode(), 2) == 0:  # MNT_DETACH
            gone.append(point)
        else:
            kept += 1
    for suffix in ("", "-wal", "-shm"):  # the archive's own files, by name
        if libc.umount2((@ARCHIVE@ + suffix).encode(), 2) == 0:
            gone.append(@ARCHIVE@ + suffix)
    say("umounted", len(gone))
    say("umount refused", kept)
    say("hiding mounts undone", [p for p in gone if p.startswith((@HOME@, @ARCHIVE_DIR@))])
    for suffix in ("", "-wal", "-shm"):
        say("archive" + suffix, _grab(@ARCHIVE@ + suffix, 16))
    try:
        con = sqlite3.connect(@ARCHIVE@, timeout=2)
        changed = con.execute("UPDATE programs SET combined_score = 3.0").rowcount
        con.commit()
        con.close()
        say("archive UPDATE", "changed %d rows" % changed)
    except Exception as exc:
        say("archive UPDATE", "refused: " + type(exc).__name__ + ": " + str(exc)[:60])
    say("canary file in HOME", _grab(@HOME@ + "/canary.txt"))
    say("~/.ssh/id_rsa", _grab(@HOME@ + "/.ssh/id_rsa", 80))
    for folder in ("/root", "/home"):
        try:
            say(folder, sorted(os.listdir(folder))[:20])
        except OSError as exc:
            say(folder, "refused: " + type(exc).__name__)

def run_packing():
    _report(_probe(_steps))
"""


def python_entries(folder: str) -> set[str]:
    """Entries of `folder` that the Python installation itself lives under (they may be in view)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.executable), str(SITE_PACKAGES)}
    return {Path(p).relative_to(folder).parts[0] for p in paths if p.startswith(folder + "/")}


async def test_unhiding_by_unmounting(arena):
    """umount2(MNT_DETACH) of every mount in view, then the archive (read it, UPDATE its scores), HOME,
    ~/.ssh, /root and /home."""
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        archive = str(arena.db.resolve())
        program, problems = await arena.attempt(fill(UNHIDE_ATTACK, ARCHIVE=archive, ARCHIVE_DIR=str(arena.db.parent),
                                                     HOME=str(arena.home)))
        report = reported(program, problems)
        got_out = []
        if report.get("umounted"):
            got_out.append(f"it unmounted {report['umounted']} mounts, hiding ones among them: "
                           f"{report.get('hiding mounts undone')}")
        for suffix in ("", "-wal", "-shm"):
            if not refused(report.get("archive" + suffix)):
                got_out.append(f"it read the archive{suffix}: {report['archive' + suffix]!r}")
        if not refused(report.get("archive UPDATE")):
            got_out.append(f"UPDATE programs SET combined_score = 3.0: {report['archive UPDATE']}")
        for key, canary in (("canary file in HOME", HOME_CANARY), ("~/.ssh/id_rsa", SSH_CANARY)):
            if canary in str(report.get(key)):
                got_out.append(f"it read the {key}: {report[key]!r}")
        for folder in ("/root", "/home"):
            seen = report.get(folder)
            if isinstance(seen, list) and set(seen) - python_entries(folder):
                got_out.append(f"it listed {folder}: {seen}")
        problems += await arena.aftermath(restart=True)
    verdict(got_out, problems)


# ---------------------------------------------------------------- 3. lifetime


LIFETIME_ATTACK = """
import ctypes, glob, json, os, time

def _stay():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none
    libc.prctl(15, @MARK@.encode(), 0, 0, 0)  # PR_SET_NAME, so that the test can find it
    try:
        os.setsid()
    except OSError:
        pass
    # into every cgroup.procs of the process-count hierarchies, the roots last
    roots = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"]
    if os.path.exists("/sys/fs/cgroup/cgroup.procs"):  # cgroup v2: the unified tree is /sys/fs/cgroup
        roots.append("/sys/fs/cgroup")
    files = {f for root in roots for f in glob.glob(root + "/**/cgroup.procs", recursive=True)}
    moved = []
    for path in sorted(files, key=len, reverse=True):
        try:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            moved.append(path)
        except OSError:
            pass
    return moved

def _ours(folder):
    # only the work dirs of this test's candidates (their code names the test's mark), no one else's
    for path in glob.glob(os.path.join(folder, "program*")):
        try:
            with open(path) as f:
                return @MARK@ in f.read()
        except OSError:
            pass
    return False

def _sabotage(workdir, seconds):
    # make result.json a directory in every new work dir in sight: later candidates cannot write theirs
    parent = os.path.dirname(workdir)
    done = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for folder in glob.glob(os.path.join(parent, "evomcp-*")):
            if folder != workdir and folder not in done and _ours(folder):
                try:
                    os.mkdir(os.path.join(folder, "result.json"))
                    done.add(folder)
                except OSError:
                    pass
        time.sleep(0.005)
    os._exit(0)

def run_packing():
    workdir = os.getcwd()
    moved = _stay()
    if os.fork() == 0:
        if os.fork() == 0:  # a daemon: its own session, reparented
            _stay()
            _sabotage(workdir, 40)
        os._exit(0)
    print("REPORT" + json.dumps({"moved into": moved}), flush=True)
    centers = [[0.1 + 0.16 * (i % 6), 0.1 + 0.16 * (i // 6)] for i in range(26)]
    with open("result.json", "w") as f:  # its own result, then "done": the evaluation looks finished
        json.dump({"ok": True, "value": [centers, [0.01] * 26], "isolation": "namespaces"}, f)
    try:
        os.write(3, b"d")
    except OSError:
        pass
    _sabotage(workdir, 40)
"""


async def test_lifetime_candidate_that_stays(arena):
    """Clears its parent-death signal, calls setsid, moves itself to the root pids cgroup, writes its own
    result and "done", forks a daemon, then both sabotage later work dirs: none of it may outlive the
    evaluation, and later candidates and a later server must work."""
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        program, problems = await arena.attempt(fill(LIFETIME_ATTACK, MARK=arena.mark))
        got_out = []
        alive = await marked_after(3.0, arena.mark)
        if alive:
            got_out.append(f"{len(alive)} of its processes outlived the evaluation: " + "; ".join(alive.values()))
        moved = reported(program, problems).get("moved into")
        if moved:
            got_out.append(f"it left its cgroup for {moved}")
        problems += await arena.aftermath(restart=True)
        alive = marked(arena.mark)
        if alive:
            got_out.append("still alive after a newly started server came and went: " + "; ".join(alive.values()))
    verdict(got_out, problems)


# ---------------------------------------------------------------- 4. hostile files left for the server


HOSTILE_FILES = {
    "stdout.txt is a FIFO": """
        import os
        def run_packing():
            os.unlink("stdout.txt")
            os.mkfifo("stdout.txt")
            raise RuntimeError("stdout.txt is now a FIFO")
        """,
    "stderr.txt is a FIFO": """
        import os
        def run_packing():
            os.unlink("stderr.txt")
            os.mkfifo("stderr.txt")
            raise RuntimeError("stderr.txt is now a FIFO")
        """,
    "result.json is a FIFO": """
        import os
        def run_packing():
            os.mkfifo("result.json")
            os._exit(0)
        """,
    "result.json is a symlink to /dev/zero": """
        import os
        def run_packing():
            os.symlink("/dev/zero", "result.json")
            os._exit(0)
        """,
    "result.json is 60 MB (over the inline read and the result cap)": """
        import os
        def run_packing():
            with open("result.json", "w") as f:
                f.write('{"ok": true, "value": [' + " " * (60 * 1024 * 1024) + "]}")
            os._exit(0)
        """,
    "result.json grows after its size was read (a process left behind keeps writing)": """
        import os, time
        def run_packing():
            with open("result.json", "w") as f:
                f.write('{"ok": true, "value": []}')
            if os.fork() == 0:
                with open("result.json", "a") as f:
                    while True:
                        f.write(" " * 65536)
                        f.flush()
            time.sleep(0.2)
            os._exit(0)
        """,
    "result.json is a directory": """
        import os
        def run_packing():
            os.mkdir("result.json")
            os._exit(0)
        """,
    "result.json holds 200,000 nested [": """
        import os
        def run_packing():
            with open("result.json", "w") as f:
                f.write("[" * 200000)
            os._exit(0)
        """,
    "result.json is a symlink to a credentials file": """
        import os
        def run_packing():
            os.symlink(@CRED@, "result.json")
            os._exit(0)
        """,
    "stdout.txt is a symlink to ~/.ssh/id_rsa": """
        import os
        def run_packing():
            os.unlink("stdout.txt")
            os.symlink(@SSH@, "stdout.txt")
            raise RuntimeError("stdout.txt now points at the SSH key")
        """,
    "stderr.txt is a symlink to the archive": """
        import os
        def run_packing():
            os.unlink("stderr.txt")
            os.symlink(@ARCHIVE@, "stderr.txt")
            raise RuntimeError("stderr.txt now points at the archive")
        """,
}


def hostile_findings(program, problems: list[str], may_score: float | None = None) -> list[str]:
    """A hostile file must end as a failed program with a reason, and the server must read nothing
    of the host for it."""
    got_out = list(problems)
    if program is None:
        return got_out
    if program.correct and program.combined_score != may_score:
        got_out.append(f"the program was accepted with score {program.combined_score}")
    if program.status not in ("pending", "running") and not program.correct and not (program.error or "").strip():
        got_out.append("the program failed without a reason")
    stored = json.dumps(program.model_dump(exclude={"code", "diff", "description"}), default=str)
    got_out += [f"the stored program holds the {name}" for name, canary in CANARIES.items() if canary in stored]
    for field in ("stdout_tail", "stderr_tail"):
        tail = getattr(program, field) or ""
        if "SQLite format 3" in tail or "\x00" in tail:
            got_out.append(f"its {field} holds bytes of the archive: {tail[:40]!r}")
    return got_out


@pytest.mark.parametrize("case", list(HOSTILE_FILES), ids=slug)
async def test_hostile_files_left_in_the_work_dir(arena, case):
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        body = fill(HOSTILE_FILES[case], CRED=str(arena.home / ".config/gcloud/application_default_credentials.json"),
                    SSH=str(arena.home / ".ssh/id_rsa"), ARCHIVE=str(arena.db.resolve()))
        program, problems = await arena.attempt(body)
        got_out = hostile_findings(program, problems)
        problems = await arena.aftermath()
    verdict(got_out, problems)


# The candidate runs inside the task's evaluate.py (the script contract): it leaves a hostile file in
# --results_dir and exits before evaluate.py writes its own.
SCRIPT_ATTACK = """
import json, os, sys

def _write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)

def value():
    results = sys.argv[sys.argv.index("--results_dir") + 1]
    path = os.path.join(results, "metrics.json")
    @ACTION@
    os._exit(0)
"""

HOSTILE_RESULTS = {
    "metrics.json is a FIFO": ("os.mkfifo(path)", None),
    "metrics.json is a symlink to a credentials file": ("os.symlink(CRED, path)", None),
    "metrics.json is a symlink to /dev/zero": ('os.symlink("/dev/zero", path)', None),
    "metrics.json holds 200,000 nested [": ('_write(path, "[" * 200000)', None),
    "metrics.json is a directory": ("os.mkdir(path)", None),
    "metrics.json is 60 MB": ("os.truncate(os.open(path, os.O_WRONLY | os.O_CREAT), 60 * 1024**2)", None),
    # metrics.json itself is fine: a server that ignores the hostile correct.json may score it (-5.0)
    "correct.json is a symlink to a credentials file": (
        '_write(path, json.dumps({"combined_score": -5.0})); '
        'os.symlink(CRED, os.path.join(results, "correct.json"))', -5.0),
}


@pytest.mark.parametrize("case", list(HOSTILE_RESULTS), ids=slug)
async def test_hostile_results_of_a_script_task(arena, case):
    with anyio.fail_after(BUDGET_S):
        task = task_folder(DATA / "script_task", arena.tmp / "script_task", arena.mark)
        await arena.start(str(task), task)
        action, may_score = HOSTILE_RESULTS[case]
        cred = str(arena.home / ".config/gcloud/application_default_credentials.json")
        body = SCRIPT_ATTACK.replace("@ACTION@", f"CRED = {cred!r}; {action}")
        program, problems = await arena.attempt(code=user_code(arena.seed.code, body))
        got_out = hostile_findings(program, problems, may_score)
        problems = await arena.aftermath()
    verdict(got_out, problems)


# ---------------------------------------------------------------- 5. links out of a task folder


LINK_READER = """
import json, os, sys

def value():
    seen = {}
    roots = [os.path.join(os.getcwd(), "task"), @ORIGINAL@]
    module = sys.modules.get("task_evaluate")
    if getattr(module, "__file__", None):
        roots.append(os.path.dirname(os.path.abspath(module.__file__)))
    for root in dict.fromkeys(roots):
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            for name in filenames:
                if name in ("initial.py", "evaluate.py", "task.toml", "token.txt"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as f:
                        seen[path] = f.read(80).decode("latin-1")
                except OSError as exc:
                    seen[path] = "refused: " + type(exc).__name__
    print("REPORT" + json.dumps(seen), flush=True)
    raise RuntimeError("REPORT" + json.dumps(seen)[:1800])
"""


async def test_task_folder_with_links_out_of_it(arena):
    """Links in a user's task folder to a secret file, to HOME and (relative) to a file beside the folder:
    starting the run refuses clearly, or the links are not followed; no secret reaches the candidate."""
    with anyio.fail_after(BUDGET_S):
        task = task_folder(DATA / "fn_task", arena.tmp / "linktask", arena.mark)
        (arena.tmp / "outside.txt").write_text(OUTSIDE_CANARY + "\n")
        (task / "notes.txt").symlink_to(arena.home / ".ssh" / "id_rsa")
        (task / "data").symlink_to(arena.home, target_is_directory=True)
        (task / "rel.txt").symlink_to("../outside.txt")
        arena.task, arena.task_dir = str(task), task
        arena.watch_files()
        got_out, problems = [], []
        try:
            with anyio.fail_after(120):
                status = await runs.start_run(arena.ws, str(task), config=CONFIG)
        except EvoError as exc:  # a clear refusal is fine
            if "link" not in str(exc).lower():
                problems.append(f"start_run refused without saying why: {exc}")
            got_out += [f"the refusal shows the {n}" for n, c in CANARIES.items() if c in str(exc)]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"start_run raised {describe_exception(exc)}")
        else:
            arena.run_id = status.run.run_id
            arena.seed = await arena.ws.program(arena.run_id, status.best.id)
            arena.seed_score = arena.seed.combined_score if arena.seed.correct else None
            if not arena.seed.correct and "link" not in (arena.seed.error or "").lower():
                problems.append(f"the seed failed without saying it is the links: {arena.seed.error}")
            program, found = await arena.attempt(code=user_code(arena.seed.code, fill(LINK_READER, ORIGINAL=str(task))))
            problems += found
            for path, content in reported(program, problems).items():
                got_out += [f"the candidate read the {n} through {path}" for n, c in CANARIES.items() if c in content]
            if not arena.seed.correct:
                arena.run_id = None  # nothing honest can score in a run whose task is refused
        problems += await arena.aftermath()
    verdict(got_out, problems)


# ---------------------------------------------------------------- 6. the host in view


HOST_VIEW_ATTACK = PROBE + """
import socket

def _steps(say):
    libc = ctypes.CDLL(None, use_errno=True)
    for name, family, address in (("unix socket", socket.AF_UNIX, @SOCK@),
                                  ("tcp 127.0.0.1", socket.AF_INET, ("127.0.0.1", @PORT@))):
        s = socket.socket(family)
        s.settimeout(1)
        try:
            s.connect(address)
            say(name, "connected")
        except OSError as exc:
            say(name, "refused: " + type(exc).__name__)
        finally:
            s.close()
    say("umount /proc", "done" if libc.umount2(b"/proc", 2) == 0 else "refused: errno %d" % ctypes.get_errno())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        pids = []
    holder, environ = [], []
    for pid in pids:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if @HOLDER@.encode() in f.read():
                    holder.append(pid)
        except OSError:
            pass
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if b"EVOMCP_ATTACK_HOLDER=" in f.read():
                    environ.append(pid)
        except OSError:
            pass
    say("processes in /proc", len(pids))
    say("holder in /proc", holder)
    say("holder's environment read", environ)
    say("server's cmdline", _grab("/proc/%d/cmdline" % @SERVER@, 200))
    block = b"\\0" * (1024 * 1024)
    for folder in ("/tmp", "/dev/shm"):
        written, error = 0, None
        for i in range(3):  # 3 files of 60 MB: each stays under the file size limit
            try:
                with open("%s/%s-%d" % (folder, @MARK@, i), "wb") as f:
                    for _ in range(60):
                        f.write(block)
                        written += 1
            except OSError as exc:
                error = "%s (errno %s)" % (type(exc).__name__, exc.errno)
                break
        say(folder, {"written MB": written, "error": error})

def run_packing():
    _report(_probe(_steps))
"""

LEFT_BEHIND = """
import json, os

def run_packing():
    found = []
    for folder in ("/tmp", "/dev/shm"):
        try:
            found += [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(@MARK@)]
        except OSError:
            pass
    raise RuntimeError("REPORT" + json.dumps({"found": found}))
"""


def accepted(listener: socket.socket) -> bool:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


async def test_host_view_processes_sockets_and_shared_memory(arena):
    """With /proc unmounted no host process is in view; no host Unix socket nor loopback TCP is reachable;
    180 MB in /tmp and in /dev/shm either stop at a size cap or vanish with the candidate."""
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        holder_tag = f"evomcp-attack-holder-{arena.mark}"
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", holder_tag],
                                  env={**os.environ, "EVOMCP_ATTACK_HOLDER": SECRET})
        arena.helpers.add(holder.pid)
        arena.cleanups.append(lambda: (holder.kill(), holder.wait()))
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(str(arena.tmp / "host.sock"))
        unix.listen()
        unix.setblocking(False)
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp.setblocking(False)
        arena.cleanups += [unix.close, tcp.close]

        def remove_files():
            for folder in ("/tmp", "/dev/shm"):
                for path in Path(folder).glob(f"{arena.mark}-*"):
                    path.unlink(missing_ok=True)

        arena.cleanups.append(remove_files)
        usage = {folder: shutil.disk_usage(folder).used for folder in ("/tmp", "/dev/shm")}
        with open("/proc/self/cmdline", "rb") as f:
            own_cmdline = f.read(200).decode("latin-1")
        program, problems = await arena.attempt(fill(HOST_VIEW_ATTACK, SOCK=str(arena.tmp / "host.sock"),
                                                     PORT=tcp.getsockname()[1], HOLDER=holder_tag,
                                                     SERVER=os.getpid(), MARK=arena.mark))
        report = reported(program, problems)
        got_out = []
        if report.get("holder in /proc"):
            got_out.append(f"host processes in its /proc ({report.get('processes in /proc')} in all), "
                           f"a process of the test among them")
        if report.get("holder's environment read"):
            got_out.append("it read the environment of a host process that holds the secret")
        if report.get("server's cmdline") == own_cmdline:
            got_out.append(f"it read the server's command line: {own_cmdline[:60]!r}")
        for name, listener in (("unix socket", unix), ("tcp 127.0.0.1", tcp)):
            if report.get(name) == "connected" or accepted(listener):
                got_out.append(f"it connected to the host's {name} the test listens on")
        private = {}  # folder -> MB written to the sandbox's own /tmp or /dev/shm (up to its size cap)
        for folder in ("/tmp", "/dev/shm"):
            left = sorted(Path(folder).glob(f"{arena.mark}-*"))
            grown = (shutil.disk_usage(folder).used - usage[folder]) // 1024**2
            written = (report.get(folder) or {}).get("written MB", 0)
            if not written:  # a private /tmp that nothing can be written to passes the rest for the wrong reason
                problems.append(f"the sandbox's own {folder} is not writable: {report.get(folder)}")
            # /tmp shares its disk with everything else on the machine: there only the files count
            if left or (folder == "/dev/shm" and grown > 100):
                got_out.append(f"{written} MB written to {folder} stayed on the host after the evaluation "
                               f"({len(left)} files, {folder} usage up {grown} MB)")
            elif written:
                private[folder] = written
        if private:  # not on the host: then it must vanish with the candidate
            later, found = await arena.attempt(fill(LEFT_BEHIND, MARK=arena.mark))
            problems += found
            seen = reported(later, problems).get("found", [])
            got_out += [f"{written} MB written to {folder} stayed for the next candidate to see: "
                        f"{[p for p in seen if p.startswith(folder + '/')]}"
                        for folder, written in private.items() if any(p.startswith(folder + "/") for p in seen)]
        problems += await arena.aftermath()
    verdict(got_out, problems)


# ---------------------------------------------------------------- 7. capabilities and system calls


SYSCALLS = {  # numbers of the calls without a libc wrapper worth relying on
    "x86_64": {"keyctl": 250, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298, "pivot_root": 155,
               "clone": 56, "clone3": 435, "kexec_load": 246, "init_module": 175, "io_uring_setup": 425},
    "aarch64": {"keyctl": 219, "bpf": 280, "userfaultfd": 282, "perf_event_open": 241, "pivot_root": 41,
                "clone": 220, "clone3": 435, "kexec_load": 104, "init_module": 105, "io_uring_setup": 425},
}

PRIVILEGE_ATTACK = PROBE + """
import struct, time

NR = @NR@
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class _iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _try(call):
    # in a forked child: "ok", "refused: errno N" or "killed by SIG..." (a seccomp filter that kills)
    pid = os.fork()
    if pid == 0:
        try:
            ok = call() >= 0
            os._exit(0 if ok else (min(ctypes.get_errno(), 254) or 255))
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "killed by " + signal.Signals(os.WTERMSIG(status)).name
    code = os.WEXITSTATUS(status)
    return "ok" if code == 0 else "refused: errno %d" % code


def _with_target(call):
    def run():
        target = os.fork()
        if target == 0:
            time.sleep(30)
            os._exit(0)
        try:
            return call(target)
        finally:
            os.kill(target, signal.SIGKILL)
            os.waitpid(target, 0)
    return run


def _mount():
    os.makedirs("mnt", exist_ok=True)
    return libc.mount(b"tmpfs", b"mnt", b"tmpfs", 0, None)


def _vm_read(target):
    buf = ctypes.create_string_buffer(64)
    local, remote = _iovec(ctypes.addressof(buf), 64), _iovec(ctypes.addressof(buf), 64)
    return libc.process_vm_readv(target, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)


def _bpf():
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("IIII", attr, 0, 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    return libc.syscall(NR["bpf"], 0, attr, 72)  # BPF_MAP_CREATE


def _vm_write(target):
    buf = ctypes.create_string_buffer(64)
    local, remote = _iovec(ctypes.addressof(buf), 64), _iovec(ctypes.addressof(buf), 64)
    return libc.process_vm_writev(target, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)


def _setns():
    return libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0)


def _clone3():
    args = ctypes.create_string_buffer(88)
    struct.pack_into("Q", args, 0, 0x40000000)  # CLONE_NEWNET
    struct.pack_into("Q", args, 32, signal.SIGCHLD)  # exit_signal
    return libc.syscall(NR["clone3"], args, 88)


def _perf():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQ", attr, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, PERF_COUNT_SW_CPU_CLOCK
    struct.pack_into("Q", attr, 40, 1 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, exclude_hv
    return libc.syscall(NR["perf_event_open"], attr, 0, ctypes.c_long(-1), ctypes.c_long(-1), 0)


def run_packing():
    libc.prctl(15, @MARK@.encode(), 0, 0, 0)  # PR_SET_NAME: the test reads our ids from outside
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                status[key] = value.split()
    tried = {
        "mount(tmpfs)": _try(_mount),
        "unshare(CLONE_NEWUSER)": _try(lambda: libc.unshare(0x10000000)),
        "ptrace(PTRACE_ATTACH)": _try(_with_target(lambda pid: libc.ptrace(16, pid, None, None))),
        "process_vm_readv": _try(_with_target(_vm_read)),
        "keyctl": _try(lambda: libc.syscall(NR["keyctl"], 0, ctypes.c_long(-3), 1)),
        "bpf": _try(_bpf),
        "userfaultfd": _try(lambda: libc.syscall(NR["userfaultfd"], 0)),
        "userfaultfd(UFFD_USER_MODE_ONLY)": _try(lambda: libc.syscall(NR["userfaultfd"], 1)),
        "perf_event_open": _try(_perf),
        "pivot_root": _try(lambda: libc.syscall(NR["pivot_root"], b".", b".")),
        "chroot": _try(lambda: libc.chroot(b".")),
        "setns": _try(_setns),
        "clone(CLONE_NEWNET)": _try(lambda: libc.syscall(NR["clone"], 0x40000000 | signal.SIGCHLD, 0, 0, 0, 0)),
        "clone3(CLONE_NEWNET)": _try(_clone3),
        "process_vm_writev": _try(_with_target(_vm_write)),
        "kexec_load": _try(lambda: libc.syscall(NR["kexec_load"], 0, 0, 0, 0)),
        "init_module": _try(lambda: libc.syscall(NR["init_module"], 0, 0, b"")),
        "io_uring_setup": _try(lambda: libc.syscall(NR["io_uring_setup"], 1, ctypes.create_string_buffer(120))),
        "prctl(PR_SET_PDEATHSIG, 0)": _try(lambda: libc.prctl(1, 0, 0, 0, 0)),
    }
    time.sleep(1.0)
    _report({"status": status, "tried": tried})
"""


async def test_capabilities_and_system_calls(arena):
    """No capabilities, no_new_privs, a seccomp filter, an unprivileged uid when the server is root; every
    call README says the filter refuses fails: mount, pivot_root, chroot, unshare, setns, clone and clone3
    with a namespace flag, ptrace, process_vm_readv/writev, keyctl, bpf, userfaultfd, perf_event_open,
    kexec_load, init_module, io_uring_setup and clearing the parent-death signal."""
    numbers = SYSCALLS.get(platform.machine())
    if numbers is None:
        pytest.skip(f"no system call numbers for {platform.machine()} here")
    with anyio.fail_after(BUDGET_S):
        await arena.start()
        host_view: dict[int, dict] = {}
        stop = anyio.Event()

        async def watch():  # the candidate's ids as the host sees them
            while not stop.is_set():
                for pid in marked(arena.mark):
                    try:
                        host_view.setdefault(pid, status_fields(pid))
                    except OSError:
                        pass
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                program, problems = await arena.attempt(fill(PRIVILEGE_ATTACK, NR=numbers, MARK=arena.mark))
            finally:
                stop.set()
        report = reported(program, problems)
        got_out = []
        status, tried = report.get("status", {}), report.get("tried", {})
        if report:
            if status.get("CapEff") != ["0000000000000000"]:
                got_out.append(f"it holds capabilities: CapEff {status.get('CapEff')}, CapBnd {status.get('CapBnd')}")
            if status.get("NoNewPrivs") != ["1"]:
                got_out.append(f"NoNewPrivs is {status.get('NoNewPrivs')}, not 1")
            if status.get("Seccomp") != ["2"]:
                got_out.append(f"Seccomp is {status.get('Seccomp')}, not 2 (a filter)")
            got_out += [f"{call} succeeded" for call, outcome in tried.items() if outcome == "ok"]
        if os.geteuid() == 0:
            if status.get("Uid", [None, None])[1] == "0":
                got_out.append(f"it runs as uid 0 in its own view (Uid {status['Uid']})")
            if not host_view:
                problems.append("the test could not see the candidate's process from the host")
            for pid, fields in host_view.items():
                if "0" in (fields.get("Uid", [None, None])[1], fields.get("Gid", [None, None])[1]):
                    got_out.append(f"seen from the host, it runs as root: Uid {fields.get('Uid')}, "
                                   f"Gid {fields.get('Gid')} (pid {pid})")
                    break
        problems += await arena.aftermath()
    verdict(got_out, problems)
