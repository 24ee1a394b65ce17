"""Parent side of the sandbox: the warm fork server, limits, timeouts and reading what a child left.

`ForkServer` starts `child.py --serve` once, with an environment that holds none of
the server's secrets, and asks it for one forked child per candidate. The child
leaves `stdout.txt`, `stderr.txt` and `result.json` in its private working directory.

Isolation levels, strongest first (`isolation_rank`): `namespaces` (each child gets its own
user, network, PID and mount namespaces), `bwrap` (the kernel refuses those to us, so the
template runs inside bubblewrap: no network, a PID namespace and /proc of its own, the
machine read-only, secrets and the archive hidden, one sandbox shared by the children
running at that moment), `none` (session, rlimits and a scrubbed environment only).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio

from .cgroups import PidsCgroups
from .channel import JsonLineChannel
from .child import SANDBOX_ID, remove_tree, runs_as_root

CHILD_SCRIPT = Path(__file__).with_name("child.py")
BWRAP_MODES = ("auto", "always", "never")

# Variables a candidate may see; everything else (API keys, tokens, proxies) is dropped.
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# Files and folders of the user that a candidate has no business reading.
SECRET_PATHS = (".ssh", ".aws", ".azure", ".config/gcloud", ".kube", ".docker", ".gnupg", ".netrc",
                ".git-credentials", ".pypirc", ".npmrc", ".config/openai", ".anthropic")


@dataclass
class Limits:
    timeout_s: float = 60.0
    address_space_bytes: int | None = 4 * 1024**3
    cpu_seconds: int | None = None  # default: timeout rounded up, plus two
    file_size_bytes: int | None = 64 * 1024**2
    open_files: int | None = 256
    processes: int | None = None
    output_tail_bytes: int = 8192
    result_max_bytes: int = 16 * 1024**2

    def rlimits(self) -> dict[str, int | None]:
        cpu = self.cpu_seconds if self.cpu_seconds is not None else int(self.timeout_s) + 2
        return {
            "address_space_bytes": self.address_space_bytes,
            "cpu_seconds": cpu,
            "file_size_bytes": self.file_size_bytes,
            "open_files": self.open_files,
            "processes": self.processes,
        }


@dataclass
class ChildOutcome:
    returncode: int | None
    timed_out: bool
    result: dict[str, Any] | None
    result_error: str | None
    stdout_tail: str
    stderr_tail: str
    elapsed_s: float
    isolation: str = "none"
    signal_name: str | None = None
    forks_refused: int = 0
    processes_at_end: int = 0  # processes of its PID namespace when a timeout stopped it (0: not counted)
    # script tasks: what evaluate.py left in --results_dir (metrics.json, correct.json); None: over the size cap
    files: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChildOutcome:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def base_environment() -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({k: "1" for k in _THREAD_VARS})
    env.update(PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    return env


def child_environment(workdir: Path) -> dict[str, str]:
    return {**base_environment(), "HOME": str(workdir), "TMPDIR": str(workdir),
            "NUMBA_CACHE_DIR": str(workdir / ".numba")}


class HostileFile(OSError):
    """A file a candidate left that is not what the trusted side expects (a link, a FIFO, a folder...)."""


_SAFE_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_dir(path: Path | str, dir_fd: int | None = None) -> int:
    """A folder the candidate could have touched, opened without following a link in its place."""
    try:
        return os.open(path, _SAFE_OPEN | os.O_DIRECTORY, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise HostileFile(exc.errno, f"{Path(path).name} is not a folder (a link or a file was left in its place)")
        raise


def read_left_file(dir_fd: int, name: str, cap: int, tail: bool = False) -> tuple[bytes, int]:
    """Read at most `cap` bytes (the last ones if `tail`) of a regular file a candidate left in a folder.

    Never follows a link, never blocks on a FIFO or a device, checks the type and size on the open
    descriptor. Returns (data, size); raises FileNotFoundError or HostileFile.
    """
    try:
        fd = os.open(name, _SAFE_OPEN, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HostileFile(exc.errno, f"{name} is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HostileFile(errno.EINVAL, f"{name} is not a regular file")
        size = info.st_size
        if tail and size > cap:
            os.lseek(fd, size - cap, os.SEEK_SET)
        chunks, left = [], min(size, cap)
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), size
    finally:
        os.close(fd)


def read_tail(dir_fd: int, name: str, cap: int) -> str:
    try:
        data, size = read_left_file(dir_fd, name, cap, tail=True)
    except HostileFile as exc:
        return f"[{exc.strerror}: not read]"
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > cap:
        text = f"[... {size - cap} earlier bytes dropped ...]\n" + text
    return text


MAX_JSON_DEPTH = 64


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        values = item.values() if isinstance(item, dict) else item
        stack.extend((v, depth + 1) for v in values if isinstance(v, (dict, list)))  # only containers nest
    return False


def parse_left_json(data: bytes, what: str) -> tuple[Any, str | None]:
    """JSON a candidate wrote, with depth and number limits; (value, None) or (None, the reason)."""
    try:
        value = json.loads(data)
    except RecursionError:
        return None, f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:
        return None, f"{what} held invalid JSON ({str(exc)[:200]})"
    if _too_deep(value):
        return None, f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
    return value, None


def read_result(dir_fd: int, cap: int, at_most: int | None = None) -> tuple[dict[str, Any] | None, str | None] | None:
    """The result a child wrote, or why there is none (an empty file is none: a spare child makes it ahead,
    see child._make_output_files); None, having parsed nothing, when it holds more than `at_most` bytes (if given)."""
    try:
        data, size = read_left_file(dir_fd, "result.json", (cap if at_most is None else min(cap, at_most)) + 1)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"the result file could not be read: {exc.strerror}"
    if at_most is not None and max(size, len(data)) > at_most:
        return None
    if size == 0 and not data:
        return None, None
    if size > cap:
        return None, f"the result was larger than {cap} bytes"
    result, error = parse_left_json(data, "the result file")
    if error:
        return None, error
    if not isinstance(result, dict):
        return None, "the result file held something other than a JSON object"
    return result, None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ForkServerError(RuntimeError):
    pass


def isolation_rank(level: str) -> int:
    """2 for per-child namespaces, 1 for a shared bubblewrap sandbox, 0 for neither."""
    parts = level.split("+")
    return 2 if "namespaces" in parts else 1 if "bwrap" in parts else 0


def sandbox_userns() -> tuple[int, Callable[[], None]] | None:
    """For a root server: a user namespace mapping root and SANDBOX_ID to themselves, for bubblewrap to
    enter (`--userns`), so that the template's children become SANDBOX_ID for real. Returns its fd and
    the clean-up to run once bubblewrap is in it; None where it cannot be made."""
    try:
        holder = subprocess.Popen(["unshare", "--user", "sleep", "600"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return None
    try:
        own, deadline = os.readlink("/proc/self/ns/user"), time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/user") == own:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise OSError(errno.EPERM, "unshare --user did not make a user namespace")
            time.sleep(0.001)
        mapping = f"0 0 1\n{SANDBOX_ID} {SANDBOX_ID} 1\n".encode()
        for name in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{holder.pid}/{name}", os.O_WRONLY)
            try:
                os.write(fd, mapping)  # one write: a map is written once
            finally:
                os.close(fd)
        userns = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
    except OSError:
        holder.kill()
        holder.wait()
        return None

    def cleanup() -> None:
        os.close(userns)
        holder.kill()
        holder.wait()

    return userns, cleanup


def bwrap_argv(view: dict[str, Any], hide: list[str], work_root: Path, userns: int | None = None) -> list[str]:
    """bubblewrap around the template: the same allowlisted, read-only view a child with namespaces gets
    (see child.sandbox_view), shared by the children, with `work_root` the one writable folder. With
    `userns` (see sandbox_userns) the template keeps only CAP_SETUID/CAP_SETGID there, to hand its
    children SANDBOX_ID, and CAP_KILL, to end what they leave behind."""
    unshare = ["--unshare-all"] if userns is None else [
        "--userns", str(userns), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    argv = ["bwrap", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL", *unshare,
            "--dev", "/dev", "--proc", "/proc",
            # small memory-backed folders, so that writing files cannot exhaust the machine's memory
            # (sticky and writable by all, as on any machine: candidates may run as another uid than the template)
            "--perms", "1777", "--size", str(view["tmp_bytes"]), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(view["shm_bytes"]), "--tmpfs", "/dev/shm"]
    parents = sorted({str(p) for path in view["ro"] for p in Path(path).parents
                      if str(p) not in ("/", "/tmp", "/dev", "/dev/shm", "/proc")}, key=len)
    for parent in parents:  # passable by an unprivileged candidate (bubblewrap would make them 0700)
        argv += ["--perms", "0755", "--dir", parent]
    for path in view["ro"]:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for path, link in view["links"].items():
        argv += ["--symlink", link, path]
    argv += ["--ro-bind", str(CHILD_SCRIPT), str(CHILD_SCRIPT)]  # the template itself (a source checkout)
    inside = [p for p in view["ro"] if os.path.isdir(p)]
    for path in hide:
        real = os.path.realpath(path)
        if not os.path.lexists(real) or not any((real + "/").startswith(p + "/") for p in inside):
            continue  # outside the view already
        argv += ["--tmpfs", real] if os.path.isdir(real) else ["--ro-bind", "/dev/null", real]
    return [*argv, "--bind", str(work_root), str(work_root), "--remount-ro", "/"]


def count_namespace_processes(outside_pid: int) -> int:
    """How many processes share the PID namespace of `outside_pid` where it is PID 1 of its own (a root
    server's child), else that of its first child (a child that waits outside its candidate's namespace;
    bubblewrap's monitor outside the shared one); 0 where that cannot be read."""
    try:
        namespace = os.readlink(f"/proc/{outside_pid}/ns/pid")
        if namespace == os.readlink("/proc/self/ns/pid"):
            inside = int(Path(f"/proc/{outside_pid}/task/{outside_pid}/children").read_text().split()[0])
            namespace = os.readlink(f"/proc/{inside}/ns/pid")
    except (OSError, ValueError, IndexError):
        return 0
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += os.readlink(f"/proc/{entry.name}/ns/pid") == namespace
            except OSError:
                continue
    return count


def _process_tree(pid: int, depth: int = 8) -> list[int]:
    """`pid` and its descendants down to `depth` generations (bubblewrap's monitor, then the template)."""
    tree, level = [], [pid]
    for _ in range(depth + 1):
        tree.extend(level)
        below = []
        for current in level:
            try:
                for tid in os.listdir(f"/proc/{current}/task"):
                    below.extend(int(p) for p in Path(f"/proc/{current}/task/{tid}/children").read_text().split())
            except OSError:
                continue
        if not below:
            break
        level = below
    return tree


WORK_ROOT_PREFIX = "evomcp-sandbox-"  # then the owning server's pid, then a random part


def lock_work_root(path: Path) -> int:
    """Hold an exclusive lock on a work folder for as long as its owner lives (the kernel drops it when the
    owner dies, however it dies): the fd, to be closed by the owner."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def sweep_work_roots() -> list[Path]:
    """Remove the work folders that server processes killed with SIGKILL left in the temp directory: this
    user's, whose lock nobody holds and whose named owner is not a process here. A live owner holds its
    folder's lock, which other pid namespaces (containers sharing /tmp) see too: its folder is never touched."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_ROOT_PREFIX}*-*"):
        try:
            owner = int(path.name[len(WORK_ROOT_PREFIX):].split("-")[0])
            info = path.lstat()
        except (ValueError, OSError):
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or owner == os.getpid() \
                or Path(f"/proc/{owner}").exists():
            continue
        try:
            fd = lock_work_root(path)
        except OSError:  # locked: its owner lives (elsewhere), or it went away meanwhile
            continue
        try:
            remove_tree(path)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


MAX_QUEUED_CLEANUPS = 4  # work directories waiting for removal at most; past that, one is removed in the slot
MAX_SPARES = 16  # the template prepares at most this many children ahead (child.py caps it the same way)


class ForkServer:
    """One warm `child.py --serve` process; forks a fresh child per request.

    `bwrap`: "auto" starts the template inside bubblewrap when the kernel refuses the children
    their own namespaces and `bwrap` is installed; "always" requires bubblewrap; "never" does
    not use it. The default comes from $EVOMCP_BWRAP, else "auto".
    """

    def __init__(self, preload: tuple[str, ...] = ("numpy",), isolate: bool = True,
                 hide: tuple[str, ...] = (), max_pids: int = 512, bwrap: str | None = None, spares: int = 1):
        self.isolate = isolate
        self.spares = max(1, min(spares, MAX_SPARES))  # children the template keeps prepared: one per slot
        self.hide = list(hide)
        self.bwrap = bwrap or os.environ.get("EVOMCP_BWRAP") or "auto"
        if self.bwrap not in BWRAP_MODES:
            raise ValueError(f"bwrap mode {self.bwrap!r}: use one of {', '.join(BWRAP_MODES)} "
                             f"(check $EVOMCP_BWRAP)")
        self.cgroups = PidsCgroups(max_pids)
        self.preload = preload
        self.work_root: Path | None = None  # children's work directories live here (a private folder)
        self._work_lock: int | None = None  # held while this process owns work_root (see sweep_work_roots)
        self.bwrap_refused: str | None = None  # why "auto" could not start bubblewrap
        self.bwrap_sandbox_id = False  # bubblewrap's user namespace maps SANDBOX_ID: children become it
        self._bwrap_hidden: set[str] = set()  # what the running bubblewrap hides (paths that existed)
        self._cgroup: Path | None = None  # the template's; every child inherits it at fork
        self._cgroup_pid: int | None = None
        self._running = 0  # children asked for and not yet reaped
        # finished work directories are removed by a thread of their own, off the evaluation slot's path
        self._cleaner: ThreadPoolExecutor | None = None
        self._cleanups = 0  # removals queued or running
        self._cleanups_lock = threading.Lock()
        # work directories made ahead and sent to the template, whose spare children lock down in them
        self._ahead: collections.deque[Path] = collections.deque()
        self._channel = JsonLineChannel(self._argv(), env=base_environment())

    def _argv(self) -> list[str]:
        # --owner names the server process in the process table (the template ignores it)
        return [sys.executable, "-I", str(CHILD_SCRIPT), "--owner", str(os.getpid()), "--serve", *self.preload]

    @property
    def pid(self) -> int | None:
        return self._channel.pid

    @property
    def pids(self) -> set[int]:
        """The template's processes as the server sees them, with the spare children it keeps prepared."""
        if self.pid is None:
            return set()
        if self.in_bwrap:  # the monitor, the template (PID 1 inside) and its spare children
            return set(_process_tree(self.pid, depth=2))
        spares = self._channel.last_message.get("spares") or []
        return {self.pid, *(p for spare in spares for p in _process_tree(spare, depth=1))}

    @property
    def in_bwrap(self) -> bool:
        return self._channel.argv[0] == "bwrap"

    def new_workdir(self, prefix: str = "evomcp-eval-") -> Path:
        """A fresh, empty work directory in the work root: the oldest one made ahead for the template's spares
        (a spare child waits in it, locked down: see child._Spare), else a new one."""
        while self._ahead:
            path = self._ahead.popleft()
            if path.parent == self.work_root:  # made for the work root in use
                return path
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._ensure_work_root()))

    def _workdirs_ahead(self) -> list[str]:
        """Work directories to send with a request, so that each spare the template prepares can lock down in
        the work directory of a request to come (where children get namespaces of their own)."""
        if not (self.isolate and self._channel.ready_info.get("namespaces")) or self.in_bwrap:
            return []
        fresh = []
        while len(self._ahead) < self.spares:
            path = Path(tempfile.mkdtemp(prefix="evomcp-eval-", dir=self.work_root))
            self._ahead.append(path)
            fresh.append(str(path))
        return fresh

    def remove_later(self, workdir: Path) -> bool:
        """Queue a finished work directory for removal; False (remove it now) when removals fall behind."""
        with self._cleanups_lock:
            if self._cleanups >= MAX_QUEUED_CLEANUPS:
                return False
            self._cleanups += 1
        if self._cleaner is None:
            self._cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evomcp-cleanup")

        def remove() -> None:
            try:
                remove_tree(workdir)
            finally:
                with self._cleanups_lock:
                    self._cleanups -= 1

        self._cleaner.submit(remove)
        return True

    async def aclose(self) -> None:
        if self._cleaner is not None:  # the queued removals finish before the work root goes
            cleaner, self._cleaner = self._cleaner, None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(cleaner.shutdown)
        await self._channel.aclose()
        if self._cgroup is not None:
            cgroup, self._cgroup, self._cgroup_pid = self._cgroup, None, None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.cgroups.remove, cgroup)
        self._ahead.clear()
        if self.work_root is not None:
            remove_tree(self.work_root)
            self.work_root = None
        if self._work_lock is not None:
            os.close(self._work_lock)
            self._work_lock = None

    def _ensure_work_root(self) -> Path:
        """The private folder of work directories; `.root` in it is where each child builds its root."""
        if self.work_root is None or not self.work_root.is_dir():
            sweep_work_roots()
            self.work_root = Path(tempfile.mkdtemp(prefix=f"{WORK_ROOT_PREFIX}{os.getpid()}-"))
            if self._work_lock is not None:  # the folder it held was removed under us
                os.close(self._work_lock)
            self._work_lock = lock_work_root(self.work_root)
            # under bubblewrap a root server's candidates (SANDBOX_ID) pass through it to their work directory
            self.work_root.chmod(0o711)
            (self.work_root / ".root").mkdir(mode=0o755)
        return self.work_root

    async def start(self, hide: list[str] | None = None) -> None:
        """Start the template (inside bubblewrap where that is the way to isolate) and put it in its cgroup."""
        self._ensure_work_root()
        await self._channel.start()
        wanted = self.hide if hide is None else hide
        if self.in_bwrap:
            # bubblewrap hides what exists when it starts: one that appeared since (a -wal file) needs a restart
            if not {p for p in wanted if os.path.lexists(p)} <= self._bwrap_hidden:
                await self._restart_in_bwrap([*self._bwrap_hidden, *wanted])
        elif self._wants_bwrap():
            await self._restart_in_bwrap(list(wanted))
        await self._template_cgroup()

    def _wants_bwrap(self) -> bool:
        if self.bwrap == "never" or self.bwrap_refused is not None:
            return False
        if self.bwrap == "always":
            if shutil.which("bwrap") is None:
                raise ForkServerError("bubblewrap is required ($EVOMCP_BWRAP=always) but `bwrap` is not on PATH: "
                                      "install it (apt install bubblewrap) or set EVOMCP_BWRAP=auto")
            return True
        refused = not self._channel.ready_info.get("namespaces", True)
        return self.isolate and refused and shutil.which("bwrap") is not None

    async def _restart_in_bwrap(self, hide: list[str]) -> None:
        view = self._channel.ready_info.get("view")
        if view is None:  # a template inside bubblewrap tells its view too: this one's did not answer
            raise ForkServerError("the sandbox template did not say what candidates may see")
        await self._channel.aclose()
        self._bwrap_hidden = {p for p in hide if os.path.lexists(p)}
        work_root = self._ensure_work_root()

        def prepare() -> tuple[tuple[int, ...], Callable[[], None]]:
            # a fresh namespace for each start of bubblewrap (the template is restarted if it dies)
            made = sandbox_userns() if runs_as_root() else None
            userns, cleanup = made if made is not None else (None, lambda: None)
            self.bwrap_sandbox_id = userns is not None
            self._channel.argv = [*bwrap_argv(view, hide, work_root, userns), "--", *self._argv(), "--bwrap"]
            return ((userns,) if userns is not None else ()), cleanup

        self._channel.prepare = prepare
        try:
            await self._channel.start()
        except Exception as exc:  # noqa: BLE001 - bubblewrap refused here: say so, run without it
            if self.bwrap == "always":
                raise ForkServerError(f"bubblewrap could not start the sandbox: {exc}") from None
            self.bwrap_refused = f"bubblewrap could not start: {exc}"
            await self._channel.aclose()
            self._channel.prepare = None
            self._channel.argv = self._argv()
            await self._channel.start()

    async def _template_cgroup(self) -> None:
        """Make sure the template (and, under bubblewrap, its monitor) sits in its pids cgroup."""
        pid = self._channel.pid
        if pid is not None and pid != self._cgroup_pid:
            old, self._cgroup = self._cgroup, None
            if old is not None:
                await anyio.to_thread.run_sync(self.cgroups.remove, old)
            cgroup = await anyio.to_thread.run_sync(self.cgroups.create, f"template-{os.getpid()}-{pid}")
            if cgroup is not None and all([await anyio.to_thread.run_sync(self.cgroups.adopt, cgroup, member)
                                           for member in _process_tree(pid)]):
                self._cgroup = cgroup
            self._cgroup_pid = pid

    def describe(self, level: str, cgroup: bool) -> str:
        """The isolation level string: `namespaces` or `bwrap` (or `none`), then `seccomp`, `pids-cgroup`."""
        parts = [p for p in level.split("+") if p and p != "none"]
        if "namespaces" not in parts:
            parts.insert(0, "bwrap" if self.in_bwrap else "none")
        if cgroup:
            parts.append("pids-cgroup")
        return "+".join(parts) or "none"

    async def _kill(self, request_id: int) -> None:
        """Have the template kill a child: it alone knows whether that pid is still its unreaped child
        (and, under bubblewrap, the pid is of its namespace); with namespaces the child's whole PID
        namespace dies with it."""
        with anyio.CancelScope(shield=True):
            await self._channel.send({"kill": request_id})

    async def run(self, spec: dict[str, Any], workdir: Path, limits: Limits,
                  hide: list[str] | None = None, isolate: bool | None = None) -> ChildOutcome:
        """Fork a child for `spec` in `workdir`; `hide` and `isolate` override the server's defaults."""
        await self.start(hide)
        cgroup = self._cgroup
        refused_before = self.cgroups.refused(cgroup)
        spec = {**spec, "workdir": str(workdir), "env": child_environment(workdir), "limits": limits.rlimits(),
                # inside bubblewrap the template itself keeps children from namespaces of their own
                "isolate": self.isolate if isolate is None else isolate,
                "hide": self.hide if hide is None else hide, "spares": self.spares}
        started = time.monotonic()
        pid = reply = None
        ended = False  # the template said the child is done or gone
        timed_out = False
        processes_at_end = 0
        forks_refused = 0
        request_id = None
        self._running += 1
        try:
            for attempt in range(2):  # a template that died since the last request is restarted once
                request_id = await self._channel.send({"spec": spec, "prepare": self._workdirs_ahead()})
                reply = await self._channel.wait(request_id, "pid", 30)
                if reply is not None and not reply.get("lost"):
                    break
                self._channel.forget(request_id)
            else:
                raise ForkServerError("the fork server did not start the child")
            if reply.get("pid") is None:
                raise ForkServerError(reply.get("error", "the fork server could not fork"))
            pid = reply["pid"]
            remaining = limits.timeout_s - (time.monotonic() - started)
            # "done": the child wrote its result and is exiting; tearing its namespaces down need not be waited for
            reply = await self._channel.wait(request_id, ("exit", "done"), max(remaining, 0.01))
            if reply is None:
                timed_out = True
                # worth saying when it hit its process cap meanwhile (under bubblewrap: the shared sandbox's)
                counted = self._channel.pid if self.in_bwrap else pid
                if counted is not None:
                    processes_at_end = await anyio.to_thread.run_sync(count_namespace_processes, counted)
                await self._kill(request_id)
                reply = await self._channel.wait(request_id, ("exit", "done"), 10)
            if reply is None or reply.get("lost"):
                raise ForkServerError("the fork server lost the child")
            ended = True
        finally:
            self._running -= 1
            if pid is not None and not ended:  # cancelled or lost: nothing of the child may outlive the call
                await self._kill(request_id)
            forks_refused = max(0, self.cgroups.refused(cgroup) - refused_before)
            if forks_refused or timed_out:  # let the kernel reap what was killed before the next fork
                with anyio.CancelScope(shield=True):
                    # the template, its spare children (2 processes each) and up to 3 per other running child
                    await anyio.to_thread.run_sync(self.cgroups.drain, cgroup, 1 + 2 * self.spares + 3 * self._running)
            if request_id is not None:
                self._channel.forget(request_id)
        elapsed = time.monotonic() - started
        exit_code, sig = (0, None) if "exit" not in reply else (reply.get("exit"), reply.get("signal"))
        if sig is None and exit_code is not None and exit_code > 128:
            sig = exit_code - 128  # a process outside the candidate's namespace passed its status on as 128 + signal
        # a small result is read at once; parsing up to 16 MB a candidate wrote takes a while: not on the event loop
        back = read_back(workdir, limits, at_most=INLINE_RESULT_BYTES)
        if back is None:
            back = await anyio.to_thread.run_sync(read_back, workdir, limits)
        result, result_error, stdout_tail, stderr_tail = back
        return ChildOutcome(
            returncode=exit_code if sig is None else -sig,
            timed_out=timed_out,
            result=result,
            result_error=result_error,
            stdout_tail=stdout_tail,
            stderr_tail=stderr_tail,
            elapsed_s=elapsed,
            isolation=self.describe((result or {}).get("isolation", "none"), cgroup is not None),
            signal_name=None if sig is None else signal_name(sig),
            forks_refused=forks_refused,
            processes_at_end=processes_at_end,
        )


INLINE_RESULT_BYTES = 1 << 16  # a result.json up to this size is read on the event loop: a thread would cost more


def read_back(workdir: Path, limits: Limits,
              at_most: int | None = None) -> tuple[dict[str, Any] | None, str | None, str, str] | None:
    """What a child left in `workdir`: (result, why there is none, stdout tail, stderr tail). With `at_most`:
    None, having parsed nothing, when result.json holds more than that many bytes."""
    try:
        dir_fd = open_dir(workdir)
    except OSError as exc:
        return None, f"the work directory could not be read back: {exc.strerror}", "", ""
    try:
        if at_most is None:
            result, result_error = read_result(dir_fd, limits.result_max_bytes)
        else:
            read = read_result(dir_fd, limits.result_max_bytes, at_most)
            if read is None:
                return None
            result, result_error = read
        return (result, result_error, read_tail(dir_fd, "stdout.txt", limits.output_tail_bytes),
                read_tail(dir_fd, "stderr.txt", limits.output_tail_bytes))
    finally:
        os.close(dir_fd)


RESULT_FILES = ("metrics.json", "correct.json")


def read_results_dir(workdir: Path, cap: int) -> dict[str, str | None]:
    """The files of the script contract that evaluate.py wrote in `workdir`/results; None for one larger
    than `cap` bytes or not a regular file (read without following links: see read_left_file)."""
    files: dict[str, str | None] = {}
    try:
        work_fd = open_dir(workdir)
    except OSError:
        return files
    try:
        results_fd = open_dir("results", dir_fd=work_fd)
    except OSError:
        return files
    finally:
        os.close(work_fd)
    try:
        for name in RESULT_FILES:
            try:
                data, size = read_left_file(results_fd, name, cap + 1)
            except HostileFile:
                files[name] = None
                continue
            except OSError:
                continue
            files[name] = None if size > cap else data.decode("utf-8", "replace")
    finally:
        os.close(results_fd)
    return files


def links_leading_out(folder: Path) -> list[str]:
    """The symbolic links inside `folder` that lead out of it, as "relative/path -> target"."""
    root = folder.resolve()
    found = []
    for parent, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            path = Path(parent, name)
            if path.is_symlink():
                resolved = path.resolve()
                if resolved != root and root not in resolved.parents:
                    found.append(f"{path.relative_to(folder)} -> {os.readlink(path)}")
    return found


def copy_task_dir(source: Path, target: Path) -> None:
    """Copy a task folder for a candidate; a link that leads out of the folder is refused, not followed."""
    outside = links_leading_out(source)
    if outside:
        raise ForkServerError(f"the task folder holds a link that leads out of it: {outside[0]}; replace it with "
                              f"a copy of what it points to")
    shutil.copytree(source, target, symlinks=True)


def hand_over(workdir: Path, uid: int) -> None:
    """A root server's candidates run as `uid`: their work directory becomes theirs.

    Bottom-up, the directory itself last, never following a link: until then it is root's and 0700,
    so no candidate (under bubblewrap they share a view of the work root) can swap anything inside
    it for a link while it is walked."""
    for folder, dirs, names in os.walk(workdir, topdown=False):
        for name in [*names, *dirs]:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)
    os.chown(workdir, uid, uid, follow_symlinks=False)


async def run_job(fork: ForkServer, job: dict[str, Any], task_dir: Path | None,
                  hide: list[str] | None = None) -> ChildOutcome:
    """Run one job in a fresh private work directory, on this machine, and remove the directory.

    A job is plain JSON, the same wherever it runs (the local executor here, a Ray or Dask worker
    elsewhere): `kind` ("entry", "evaluate_fn", "script", "score", "check" or "probe"), `code`, `suffix`,
    `entry`, `build` (a program in another language: its build steps and run command, evaluators/languages.py),
    `evaluate_name`, `limits` (the fields of Limits) and optionally `isolate`; an "evaluate_fn" job may
    hold `cascade` ({"thresholds", "stage_timeout_s"}: OpenEvolve's staged evaluation). A "score" job holds no
    code: `value` (the data a candidate returned) and `score_name` (default "score"), for the task's
    score function. `task_dir` is the task directory to copy in (kinds evaluate_fn, script and
    score); `hide` overrides the fork server's list.
    """
    limits = Limits(**job.get("limits", {}))
    kind = job["kind"]
    await fork.start(hide)
    workdir = fork.new_workdir("evomcp-probe-" if kind == "probe" else "evomcp-eval-")
    task_copy = None
    try:
        spec: dict[str, Any] = {"kind": kind}
        results_dir = workdir / "results"
        if kind not in ("probe", "score"):  # a score job never gets candidate code
            program_path = workdir / f"program{job.get('suffix', '.py')}"
            program_path.write_text(job["code"])
            spec["program_path"] = str(program_path)
        if job.get("build") is not None:  # a program in another language: built, then run (evaluators/languages.py)
            spec["build"] = job["build"]
        if kind == "entry":
            spec["entry"] = job["entry"]
        elif kind in ("evaluate_fn", "script", "score"):
            if task_dir is None:
                raise ForkServerError("a task-directory job came without its task directory")
            # The user's evaluate.py runs inside the sandbox too: it imports the candidate (evaluate_fn,
            # script), or it scores the data a candidate returned (score: no candidate code here).
            task_copy = workdir / "task"
            await anyio.to_thread.run_sync(copy_task_dir, task_dir, task_copy)
            spec.update(task_dir=str(task_copy), evaluate_path=str(task_copy / job.get("evaluate_name", "evaluate.py")),
                        results_dir=str(results_dir))
            results_dir.mkdir()
            if kind == "score":
                spec.update(value=job.get("value"), score_name=job.get("score_name", "score"))
            if kind == "evaluate_fn" and job.get("cascade"):
                spec["cascade"] = job["cascade"]
        if runs_as_root() and (not fork.in_bwrap or fork.bwrap_sandbox_id):
            if task_copy is None:  # the program file alone: two chowns cost less than a thread's round trip
                hand_over(workdir, SANDBOX_ID)
            else:
                await anyio.to_thread.run_sync(hand_over, workdir, SANDBOX_ID)
        outcome = await fork.run(spec, workdir, limits, hide=hide, isolate=job.get("isolate"))
        if kind == "script":
            outcome.files = read_results_dir(workdir, limits.result_max_bytes)
        return outcome
    finally:
        if not fork.remove_later(workdir):
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(remove_tree, workdir)
