"""The sandbox tests once more as an unprivileged user, when the suite itself runs as root.

A sandbox that holds for a root server can still break for an ordinary user, and the other way
round (which ids there are to map candidates to, cgroups, namespaces, files the user owns). CI runs
the suite as root, so a root session runs test_adversarial.py (but for its bubblewrap fallback wiring)
and every test_attacks*.py again as uid and gid 65534 (nobody), with no supplementary groups and no
capabilities, with a HOME and TMPDIR of that user's own. A session that is not root is already
unprivileged: the whole suite runs as that user, and this module is skipped.

What that user runs must be readable by it: a virtual environment of a Python outside folders it
cannot enter (one in root's home will not do), holding evomcp installed from a copy of this tree (not editable) and
the dependencies of `.[test]` at the versions this session has, and a copy of the tests. It is built
as root in a root-owned, world-readable cache (nothing secret goes there) and reused: the
dependencies per interpreter and versions, evomcp and the tests per hash of their files. Nothing
inside the cache is writable by that user, so the inner pytest writes no bytecode and no cache.

Deselect with `-m "not unprivileged"`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unprivileged

NOBODY = 65534  # uid and gid
PROJECT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("EVOMCP_UNPRIVILEGED_CACHE", "/var/tmp/evomcp-unprivileged"))
SUITES = ("test_adversarial.py",)  # and every test_attacks*.py
# the fallback to bubblewrap on a refusing kernel is wiring, the same for every user: tested as root only
NOT_AGAIN = "not bubblewrap_takes_over and not bubblewrap_required and not python_that_lives_under_tmp"
KEEP_BUILDS = 3  # project builds kept in the cache (the newest); a build in use is never removed
# Everything is rebuilt a week after it was built: tmpfiles cleaners delete files under /var/tmp that
# nobody touched for 30 days, which can break an environment that is used every day.
MAX_AGE_S = 7 * 86400
INNER_TIMEOUT_S = 1800
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOT_COPIED = {"__pycache__", ".pytest_cache", ".hypothesis"}
INSTALL_PYTHON = ("install a Python {version} that every user can run (on Debian or Ubuntu: "
                  "apt install python3, or python{version})")

# Run as nobody: what it is, what it may do, which Python.
PROBE = """
import json, os, sys
caps = {line.split(":")[0]: int(line.split(":")[1], 16) for line in open("/proc/self/status")
        if line.startswith("Cap")}
print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "full": sys.version.split()[0],
                  "ids": sorted({os.getuid(), os.geteuid(), os.getgid(), os.getegid()}),
                  "groups": os.getgroups(), "caps": caps}))
"""
# Run as nobody in a new build: evomcp comes from the environment itself, everything imports.
CHECK = """
import sys, evomcp, numpy, numba, mcp, pytest, pytest_asyncio, hypothesis, httpx
assert evomcp.__file__.startswith(sys.prefix + "/"), (evomcp.__file__, sys.prefix)
"""


def drop_privileges(setpriv: str) -> list[str]:
    """The command line prefix that runs what follows as nobody. setpriv still holds root's capabilities
    when it calls execve (it can start a program in a folder nobody cannot enter): env, started by it
    with none, starts the program as nobody would."""
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--", shutil.which("env", path=SYSTEM_PATH) or "/usr/bin/env"]


def run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit code {done.returncode}): {' '.join(map(str, command))}\n"
                    f"{(done.stdout + done.stderr)[-6000:]}", pytrace=False)
    return done


# ---------------------------------------------------------------------------------------------------
# What goes in: the interpreter, the dependency versions, the project's files


def pyproject() -> dict:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())


def find_python(setpriv: str) -> tuple[str, dict]:
    """An interpreter nobody can run: this session's own base interpreter if it can, else the system's
    of the same version, else the system's python3 if the project supports it."""
    version = "%d.%d" % sys.version_info[:2]
    supported = SpecifierSet(pyproject()["project"].get("requires-python", ""))
    candidates = [os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable),
                  shutil.which(f"python{version}", path=SYSTEM_PATH), shutil.which("python3", path=SYSTEM_PATH)]
    tried = []
    for python in dict.fromkeys(c for c in candidates if c):
        done = subprocess.run([*drop_privileges(setpriv), python, "-I", "-c", PROBE], capture_output=True,
                              text=True, cwd="/", env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                              stdin=subprocess.DEVNULL, timeout=60)
        if done.returncode != 0:
            tried.append(f"{python}: {(done.stderr.strip().splitlines() or ['exit code %d' % done.returncode])[-1]}")
            continue
        probe = json.loads(done.stdout)
        if probe["version"] not in supported:
            tried.append(f"{python}: Python {probe['version']} is not {supported}")
            continue
        return python, probe
    pytest.fail(f"no Python that uid {NOBODY} can run ({'; '.join(tried)}): "
                + INSTALL_PYTHON.format(version=version), pytrace=False)


def requirements() -> list[str]:
    project = pyproject()["project"]
    return [*project.get("dependencies", []), *project.get("optional-dependencies", {}).get("test", [])]


def pinned_versions(specs: list[str]) -> dict[str, str]:
    """The version this session has of every distribution `specs` need, transitively: the unprivileged run
    tests the same versions. Missing ones are left to pip."""
    pins, seen, todo = {}, set(), [(Requirement(s), "") for s in specs]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        pins[name] = distribution.version
        for line in distribution.requires or []:
            todo += [(Requirement(line), wanted) for wanted in ("", *requirement.extras)]
    return dict(sorted(pins.items()))


def project_files() -> list[Path]:
    """What building evomcp and running the tests read: pyproject.toml, README, the package folders, tests/."""
    config = pyproject()
    setuptools = config.get("tool", {}).get("setuptools", {})
    folders = ({path.split("/")[0] for path in setuptools.get("package-dir", {}).values()}
               or {name.split(".")[0] for name in setuptools.get("packages", [])})
    readme = config["project"].get("readme")
    files = [Path(name) for name in ("pyproject.toml", readme if isinstance(readme, str) else None,
                                     "LICENSE", "setup.py", "setup.cfg", "MANIFEST.in")
             if name and (PROJECT / name).is_file()]
    for folder in sorted(folders | {"tests"}):
        files += sorted(path.relative_to(PROJECT) for path in (PROJECT / folder).rglob("*")
                        if path.is_file() and not NOT_COPIED.intersection(path.relative_to(PROJECT).parts)
                        and path.suffix != ".pyc")
    return files


def digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def copy_files(files: list[Path], destination: Path) -> None:
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / relative, target)
        os.chmod(target, 0o755 if os.stat(PROJECT / relative).st_mode & 0o100 else 0o644)


# ---------------------------------------------------------------------------------------------------
# The cache: a root-owned folder; one lock serialises builds and clean-up


@contextmanager
def locked_cache():
    try:
        CACHE.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        pytest.fail(f"cannot create {CACHE} ({exc}): set EVOMCP_UNPRIVILEGED_CACHE to a folder root may write",
                    pytrace=False)
    info = os.lstat(CACHE)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        pytest.fail(f"{CACHE} is not a folder that only root can write: remove it, or set "
                    "EVOMCP_UNPRIVILEGED_CACHE to another place", pytrace=False)
    fd = os.open(CACHE / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def pip_install(python: Path, arguments: list[str]) -> None:
    if importlib.util.find_spec("pip") is None:
        pytest.fail(f"pip is missing from {sys.prefix}: it installs the unprivileged user's environment",
                    pytrace=False)
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", *arguments], f"pip install into {python.parent.parent}", cwd=CACHE)


def build_dependencies(python: str, pins: dict[str, str], folder: Path) -> None:
    """A venv of `python` with the dependencies of `.[test]` (this session's versions) and the build backend."""
    run([python, "-m", "venv", "--without-pip", str(folder / "venv")],
        f"creating a virtual environment with {python} (Debian and Ubuntu also need python3-venv)")
    specs = requirements() + pyproject().get("build-system", {}).get("requires", [])
    pinned = [f"{name}=={version}" for name, version in pins.items()]
    try:
        pip_install(folder / "venv" / "bin" / "python", specs + pinned)
    except pytest.fail.Exception:  # a version this session has that the index lacks: let pip choose
        pip_install(folder / "venv" / "bin" / "python", specs)


def clone_venv(source: Path, target: Path) -> None:
    """`source` at `target`: hard links (no space, no time) but for bin/ and pyvenv.cfg, which name their folder."""
    def link(src: str, dst: str) -> None:
        if Path(src).parent.name == "bin" or Path(src).name == "pyvenv.cfg":
            Path(dst).write_bytes(Path(src).read_bytes().replace(str(source).encode(), str(target).encode()))
            shutil.copymode(src, dst)
        else:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link)


def build_project(dependencies: Path, files: list[Path], setpriv: str, folder: Path) -> None:
    """The dependencies' venv plus evomcp installed from a copy of the tree, and a copy of the tests."""
    venv = folder / "venv"
    clone_venv(dependencies / "venv", venv)
    copy_files(files, folder / "src")
    pip_install(venv / "bin" / "python", ["--no-deps", "--no-build-isolation", str(folder / "src")])
    shutil.rmtree(folder / "src")
    copy_files([f for f in files if f.parts[0] == "tests" or f == Path("pyproject.toml")], folder / "suite")
    run([*drop_privileges(setpriv), str(venv / "bin" / "python"), "-c", CHECK], f"importing as uid {NOBODY}",
        cwd="/", env={"PATH": SYSTEM_PATH, "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"})


def built(folder: Path) -> float:
    """When `folder` was completely built (0: never, or interrupted)."""
    try:
        return float(json.loads((folder / "ready").read_text())["built"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def used(folder: Path) -> float:
    try:
        return (folder / "ready").stat().st_mtime
    except OSError:
        return 0.0


def fresh(folder: Path, build, *args) -> float:
    """`folder`, built by build(*args, folder) unless a session did within MAX_AGE_S; returns the seconds
    the build took (0 when reused)."""
    if time.time() - built(folder) < MAX_AGE_S or built(folder) and in_use(folder):  # (old, but a session runs it)
        os.utime(folder / "ready")  # used now: the clean-up keeps the newest builds
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)  # interrupted, or old
    start = time.monotonic()
    folder.mkdir(mode=0o755)
    build(*args, folder)
    (folder / "ready").write_text(json.dumps({"built": time.time()}) + "\n")
    return time.monotonic() - start


def clean_up(keep: set[Path]) -> None:
    """Removes interrupted or old builds and project builds beyond the newest KEEP_BUILDS; never one
    that a session runs from."""
    builds = sorted(CACHE.glob("build-*"), key=used, reverse=True)
    for folder in CACHE.iterdir():
        if folder.name == ".lock" or folder in keep:
            continue
        old = (time.time() - built(folder) > MAX_AGE_S
               or folder.name.startswith("build-") and folder not in builds[:KEEP_BUILDS])
        if old and not in_use(folder):
            shutil.rmtree(folder, ignore_errors=True)


def in_use(folder: Path) -> bool:
    try:
        fd = os.open(folder / "ready", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def unprivileged_env():
    """(venv, suite folder, setpriv, timings): built once per session, reused across sessions while nothing
    changed."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the whole suite runs as this user")
    setpriv = shutil.which("setpriv", path=SYSTEM_PATH)
    if setpriv is None:
        pytest.fail("setpriv is needed to run the sandbox tests as an unprivileged user: apt install util-linux",
                    pytrace=False)
    start, mask = time.monotonic(), os.umask(0o022)
    try:
        python, probe = find_python(setpriv)
        assert probe["ids"] == [NOBODY] and probe["groups"] == [], probe
        assert not any(probe["caps"].values()), f"setpriv left capabilities: {probe['caps']}"
        pins = pinned_versions(requirements())
        files = project_files()
        dependencies_key = digest(os.path.realpath(python), probe["full"], requirements(), pins,
                                  pyproject().get("build-system", {}))
        project_key = digest(dependencies_key, *[part for f in files
                                                 for part in (str(f), (PROJECT / f).read_bytes(),
                                                              os.stat(PROJECT / f).st_mode & 0o100)])
        with locked_cache():
            dependencies, build = CACHE / f"deps-{dependencies_key}", CACHE / f"build-{project_key}"
            timings = {"dependencies": fresh(dependencies, build_dependencies, python, pins)}
            timings["project"] = fresh(build, build_project, dependencies, files, setpriv)
            holder = os.open(build / "ready", os.O_RDONLY)
            fcntl.flock(holder, fcntl.LOCK_SH)  # in use until the session ends
            clean_up({dependencies, build})
    finally:
        os.umask(mask)
    timings["prepare"] = time.monotonic() - start
    try:
        yield build / "venv", build / "suite", setpriv, timings
    finally:
        os.close(holder)


# ---------------------------------------------------------------------------------------------------
# The run


@pytest.fixture
def nobody_dirs():
    """A HOME and a TMPDIR that nobody owns, removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="evomcp-unprivileged-", dir="/tmp" if os.path.isdir("/tmp") else None))
    os.chmod(top, 0o755)
    dirs = top / "home", top / "tmp"
    for folder in dirs:
        folder.mkdir(mode=0o700)
        os.chown(folder, NOBODY, NOBODY)
    yield dirs
    shutil.rmtree(top, ignore_errors=True)


# Runs the unprivileged pytest as root's child, as a subreaper: whatever that pytest leaves orphaned
# (a daemon, a double fork, a process that called setsid) becomes this process's child instead of
# init's. Once pytest exits (or is killed at the timeout), everything still below it was left
# behind: it is recorded and killed. Writes {"code": ..., "left": {pid: command line}}.
REAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time

from evomcp.testing.procs import cmdline, descendants

report, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = subprocess.Popen(argv)


def reap_orphans():
    # what init does: an orphan that exited is reaped, or its zombie would count against the process limit
    # of uid 65534 that every candidate of the suite runs under (the orphans still alive are judged below)
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == child.pid:
            return
        os.waitpid(info.si_pid, 0)


deadline = time.monotonic() + timeout
code = None
while code is None:
    reap_orphans()
    code = child.poll()
    if code is None and time.monotonic() > deadline:
        child.kill()
        child.wait()
        code = "killed after %d s" % timeout
    elif code is None:
        time.sleep(0.2)


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


deadline, left = time.monotonic() + 5, {}
while (pids := descendants()) and time.monotonic() < deadline:  # the dying may take a moment
    reap()
    time.sleep(0.05)
for _ in range(100):  # a fork bomb keeps making more
    pids = descendants()
    if not pids:
        break
    for pid in pids:
        line = cmdline(pid)
        if line is None:  # gone meanwhile
            continue
        left.setdefault(pid, line)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
    reap()
with open(report, "w") as f:
    json.dump({"code": code, "left": left}, f)
"""


def test_sandbox_tests_pass_as_nobody(unprivileged_env, nobody_dirs, tmp_path):
    venv, suite, setpriv, timings = unprivileged_env
    home, tmp = nobody_dirs
    tests = [suite / "tests" / name for name in SUITES] + sorted((suite / "tests").glob("test_attacks*.py"))
    # quiet through the project's addopts (-q); a second -q would drop the line that counts the results
    command = [*drop_privileges(setpriv), str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
               "-c", str(suite / "pyproject.toml"), "--rootdir", str(suite), "-k", NOT_AGAIN, *map(str, tests)]
    env = {"PATH": f"{venv}/bin:{SYSTEM_PATH}", "HOME": str(home), "TMPDIR": str(tmp), "USER": "nobody",
           "LOGNAME": "nobody", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "VIRTUAL_ENV": str(venv)}
    log, report = tmp_path / "output.txt", tmp_path / "report.json"
    start = time.monotonic()
    with open(log, "wb") as out:  # a file, not a pipe: a process left holding it cannot block the wait
        reaper = subprocess.Popen([sys.executable, "-I", "-c", REAPER, str(report), str(INNER_TIMEOUT_S), *command],
                                  cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        reaper.wait(timeout=INNER_TIMEOUT_S + 300)
    finally:
        if reaper.poll() is None:
            os.killpg(reaper.pid, signal.SIGKILL)
            reaper.wait()
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    print(output)
    print(f"prepare {timings['prepare']:.1f} s (dependencies built in {timings['dependencies']:.1f} s, "
          f"project in {timings['project']:.1f} s; 0 = cached), tests as uid {NOBODY} {seconds:.1f} s")
    assert report.exists(), f"the reaper failed (exit code {reaper.returncode}):\n{output[-6000:]}"
    outcome = json.loads(report.read_text())
    problems = []
    if outcome["code"] != 0:
        summary = output.rfind("= short test summary info =")
        problems.append(f"the sandbox tests failed as uid {NOBODY} (exit code {outcome['code']}; the whole output "
                        f"is under 'Captured stdout call'):\n"
                        + output[output.rfind("\n", 0, summary) + 1 if summary >= 0 else -12000:][-12000:])
    if outcome["left"]:
        problems.append(f"processes outlived the tests (killed now): {outcome['left']}")
    # a run where everything was skipped also exits 0: the attacks must really have run, at both levels
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|error)", output.splitlines()[-1]
                                                      if output.strip() else "")}
    if outcome["code"] == 0 and (counts.get("passed", 0) < 80 or counts.get("skipped", 0)):
        problems.append(f"as uid {NOBODY} too few attack tests ran: {output.strip().splitlines()[-1:]}")
    assert not problems, "\n".join(problems)
