"""The sandboxed side of an evaluation: a warm fork server and the child it forks per candidate.

Run by path with `python -I child.py --serve`; it imports nothing of evomcp. It starts
with an environment already scrubbed of secrets, imports the heavy libraries once,
then reads one JSON request a line on stdin. For each it forks a child that:

1. starts its own session, points fds 0/1/2 at /dev/null and capped files in its
   private working directory, and takes the environment of the request;
2. enters fresh user, network, PID and mount namespaces where the kernel allows
   (no network, no view of other processes, the archive and secret files hidden),
   forking once more so the candidate is PID 1 of its namespace: when it ends, every
   process it started ends with it. Where the kernel refuses, the server may start
   this template inside bubblewrap instead (`--bwrap`): one sandbox with no network,
   its own PID namespace and a read-only view of the machine, shared by the children;
   the template is PID 1 there and kills whatever a finished child left behind;
3. applies rlimits and runs the candidate, then writes one JSON document to
   `result.json` and exits without running any atexit code.

The server is told the child's pid at once and its exit status when it is reaped.
A process that ran candidate code is never reused.
"""

import ctypes
import errno
import importlib.util
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


# ---------------------------------------------------------------- isolation


def _hide(paths, workdir):
    """Cover secret directories with an empty tmpfs and secret files with /dev/null."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        real = os.path.realpath(path)
        if os.path.isdir(real):
            if os.path.realpath(workdir).startswith(real.rstrip("/") + "/"):
                continue
            ok = _libc.mount(b"tmpfs", real.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=0555")
        else:
            ok = _libc.mount(b"/dev/null", real.encode(), None, MS_BIND, None)
        if ok != 0:
            raise OSError(ctypes.get_errno(), f"cannot hide {path}")


def _enter_namespaces(hide, workdir):
    """New user+net+pid+mount namespaces; returns False where the kernel refuses."""
    if _libc.unshare(NAMESPACES) != 0:
        return False
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "cannot make mounts private")
    _hide(hide, workdir)
    return True


def namespaces_allowed():
    """Whether this kernel lets us enter the namespaces a child uses (tried in a throwaway fork)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _libc.unshare(NAMESPACES) == 0 else 1)
    _, status = os.waitpid(pid, 0)  # retried on EINTR by Python itself (PEP 475)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _become_pid_one():
    """Fork so that the caller continues as PID 1 of the new PID namespace.

    The parent stays behind only to pass the exit status on: 128 + signal number when
    the candidate was killed by a signal.
    """
    pid = _fork_patiently()
    if pid is None:
        raise OSError(errno.EAGAIN, "the process limit is still reached by an earlier candidate")
    if pid == 0:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # a /proc of this namespace only: the server's environment and pid are out of sight
        if _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            os._exit(71)
        return
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _apply_limits(limits):
    table = {
        "address_space_bytes": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "file_size_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
        "processes": resource.RLIMIT_NPROC,
    }
    for key, which in table.items():
        value = limits.get(key)
        if value is None:
            continue
        _, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


# ---------------------------------------------------------------- running the candidate


def _jsonable(value, depth=0):
    if depth > 50:
        raise ValueError("result nests too deeply")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if hasattr(value, "item"):
        return _jsonable(value.item(), depth + 1)
    return repr(value)[:200]


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run_candidate(spec):
    kind = spec["kind"]
    if kind == "probe":
        return {"ok": True, "value": None}
    if kind == "entry":
        module = _load_module("candidate", spec["program_path"])
        entry = getattr(module, spec["entry"], None)
        if not callable(entry):
            return {"ok": False, "error": f"the program defines no function {spec['entry']}()"}
        return {"ok": True, "value": _jsonable(entry())}
    if kind == "evaluate_fn":
        sys.path.insert(0, spec["task_dir"])
        module = _load_module("task_evaluate", spec["evaluate_path"])
        metrics = module.evaluate(spec["program_path"])
        if not isinstance(metrics, dict) and isinstance(getattr(metrics, "metrics", None), dict):
            # OpenEvolve's EvaluationResult(metrics=..., artifacts=...): artifacts become feedback
            artifacts = getattr(metrics, "artifacts", None) or {}
            metrics = dict(metrics.metrics)
            if artifacts and "text_feedback" not in metrics:
                metrics["text_feedback"] = "\n".join(f"{k}: {v}" for k, v in artifacts.items())[:8000]
        if not isinstance(metrics, dict):
            return {"ok": False, "error": f"evaluate() returned {type(metrics).__name__}, expected a dict"}
        return {"ok": True, "value": _jsonable(metrics)}
    return {"ok": False, "error": f"unknown child kind {kind!r}"}


def _outcome(spec):
    try:
        return _run_candidate(spec)
    except SystemExit as exc:
        return {"ok": False, "error": f"the program called sys.exit({exc.code!r}) instead of returning"}
    except MemoryError:
        return {"ok": False, "error": "memory limit: MemoryError (the program exceeded its address space limit)"}
    except RecursionError:
        return {"ok": False, "error": "RecursionError: unbounded recursion"}
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            return {"ok": False, "error": "file size limit: the program wrote more to a file or to its output "
                                          "than allowed"}
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc(limit=-8)[-4000:]}
    except BaseException as exc:  # noqa: BLE001 - whatever the candidate raises is data
        tb = traceback.format_exc(limit=-8)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": tb[-4000:]}


DONE_FD = 3  # a child writes b"d" here once result.json is complete: the server need not wait for its exit
SPEC_FD = 4  # a spare child reads its spec here


def _prepare(isolate, hide, workdir):
    """What a child does before it runs anything of the candidate: session, namespaces, PID 1.

    Nothing here depends on the candidate, so a spare child does it ahead of time (`workdir`
    only needs to name a folder next to the real one, for `_hide`). Returns the isolation level.
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the template
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (one-shot mode)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    if isolate and _enter_namespaces(hide, workdir):
        _become_pid_one()
        return "namespaces"
    return "none"


def _run(spec, isolation, done_fd):
    """Run the candidate of `spec` in its work directory, write result.json and exit: never returns."""
    _libc.prctl(PR_SET_NAME, b"evomcp-cand", 0, 0, 0)  # what `ps` shows: a running candidate
    workdir = spec["workdir"]
    os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open("stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
    if done_fd is None:
        os.closerange(3, 4096)
    else:
        os.closerange(done_fd + 1, 4096)
        os.set_inheritable(done_fd, False)  # an evaluate.py exec'd below does not get it
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    os.environ.clear()
    os.environ.update(spec["env"])
    if "numba" in sys.modules:
        sys.modules["numba"].config.CACHE_DIR = os.path.join(workdir, ".numba")
    _apply_limits(spec.get("limits", {}))
    if spec["kind"] == "script":
        argv = [sys.executable, "-I", spec["evaluate_path"], "--program_path", spec["program_path"],
                "--results_dir", spec["results_dir"]]
        os.execv(sys.executable, argv)
    outcome = _outcome(spec)
    outcome["isolation"] = isolation
    try:
        data = json.dumps(outcome)
    except (TypeError, ValueError) as exc:
        data = json.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}"})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass  # output over its size limit: the tail already holds what fitted
    fd = os.open(os.path.join(workdir, "result.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    view = memoryview(data.encode())
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)
    if done_fd is not None:
        try:
            os.write(done_fd, b"d")
        except OSError:
            pass
    os._exit(0)


def _die_quietly(where):
    try:
        os.write(2, f"{where}: ".encode() + traceback.format_exc().encode()[-4000:])
    finally:
        os._exit(70)


def run_child(spec):
    """Body of a child forked for `spec` at once (one-shot mode, benchmarks): never returns."""
    try:
        if spec.get("cgroup"):
            with open(os.path.join(spec["cgroup"], "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        isolation = _prepare(spec.get("isolate", True), spec.get("hide", []), spec["workdir"])
        _run(spec, isolation, None)
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        _die_quietly("child")


def _child_main(spec, key, done_w, spec_r):
    """A child of the template, forked for `spec`, or as a spare (spec None) prepared for `key`."""
    try:
        # only the pipes of this child survive, at fixed numbers; 0 and 1 were the template's channel
        os.dup2(done_w, 1000)
        if spec_r is not None:
            os.dup2(spec_r, 1001)
        os.closerange(3, 1000)
        os.dup2(1000, DONE_FD)
        if spec_r is not None:
            os.dup2(1001, SPEC_FD)
        os.closerange(1000, 4096)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        if spec is None:
            _libc.prctl(PR_SET_NAME, b"evomcp-spare", 0, 0, 0)  # a prepared child waiting for its candidate
        isolate, hide, folder = key
        isolation = _prepare(isolate, list(hide), os.path.join(folder, "next"))
        if spec is None:
            chunks = []
            while chunk := os.read(SPEC_FD, 1 << 16):
                chunks.append(chunk)
            if not chunks:
                os._exit(0)  # the template discarded this spare
            os.close(SPEC_FD)
            spec = json.loads(b"".join(chunks))
        _run(spec, isolation, DONE_FD)
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        _die_quietly("child")


def _key(spec):
    """What a spare must have been prepared for to serve `spec`."""
    return bool(spec.get("isolate", True)), tuple(spec.get("hide", [])), os.path.dirname(spec["workdir"])


# ---------------------------------------------------------------- the fork server


def _fork_patiently(seconds=3.0):
    """fork(), retried while the pids cgroup refuses (its last candidate's processes are being reaped)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return os.fork()
        except OSError as exc:  # EAGAIN: pids limit; ENOMEM: a fork bomb's memory not yet given back
            if exc.errno not in (errno.EAGAIN, errno.ENOMEM):
                raise
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def _reply(message):
    os.write(1, (json.dumps(message) + "\n").encode())


def _kill(pid):
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _strangers(known):
    """Our direct children that no request started: orphans of finished candidates, reparented to us."""
    found = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
    except OSError:
        return set()
    return found - set(known)


class _Spare:
    """A child forked and prepared (session, namespaces, PID 1) before its candidate is known."""

    def __init__(self, key):
        self.key = key
        self.pid = self.spec_w = self.done_r = None
        done_r, done_w = os.pipe()
        spec_r, spec_w = os.pipe()
        try:
            self.pid = os.fork()  # one try: a full pids cgroup means no spare, never a wait
        except OSError:
            for fd in (done_r, done_w, spec_r, spec_w):
                os.close(fd)
            return
        if self.pid == 0:
            _child_main(None, key, done_w, spec_r)
        os.close(done_w)
        os.close(spec_r)
        self.done_r, self.spec_w = done_r, spec_w

    def hand(self, spec):
        """Give the spare its spec; False if it is gone."""
        try:
            data = json.dumps(spec).encode()
            while data:
                data = data[os.write(self.spec_w, data):]
            return True
        except OSError:
            return False
        finally:
            os.close(self.spec_w)
            self.spec_w = None

    def discard(self, reaped=False):
        """Close its pipes (it reads EOF and exits) and kill it, unless it was reaped (its pid may be reused)."""
        for fd in (self.spec_w, self.done_r):
            if fd is not None:
                os.close(fd)
        self.spec_w = self.done_r = None
        if self.pid and not reaped:
            _kill(self.pid)


def serve(preload, in_bwrap=False):
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the server, even on kill -9
    if os.getppid() == 1:
        os._exit(0)  # the server died before the line above took effect
    if in_bwrap:
        # PID 1 of bubblewrap's namespace (its parent is outside: getppid() is 0). Candidates share
        # this namespace: undumpable, nothing here can be traced or read through /proc by them.
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    for name in preload:
        try:
            __import__(name)
        except ImportError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = {}  # pid -> request id
    done = {}  # read end of a child's done pipe -> (request id, pid)
    spare = None
    buffer = b""
    _reply({"ready": True, "pid": os.getpid(), "preloaded": sorted(n for n in preload if n in sys.modules),
            "namespaces": namespaces_allowed(), "bwrap": in_bwrap})

    def start(request):
        """Hand the request to the spare if it was prepared for it, else fork a child for it now."""
        nonlocal spare
        spec, key = request["spec"], _key(request["spec"])
        if spare is not None and spare.pid is not None and spare.key == key and spare.hand(spec):
            pid, done_r = spare.pid, spare.done_r
        else:
            if spare is not None:
                spare.discard()
            done_r, done_w = os.pipe()
            pid = _fork_patiently()
            if pid == 0:
                _child_main(spec, key, done_w, None)
            os.close(done_w)
            if pid is None:  # the pids cgroup is still full of a previous candidate's processes
                os.close(done_r)
                _reply({"id": request["id"], "pid": None, "exit": None, "signal": None,
                        "error": "the process limit is still reached by an earlier candidate"})
                spare = None
                return
        children[pid] = request["id"]
        done[done_r] = (request["id"], pid)
        spare = None
        _reply({"id": request["id"], "pid": pid, "spare": None})
        # the next child prepares while this one runs; its pid goes with the replies (the server's view)
        spare = _Spare(key)

    while True:
        try:
            readable, _, _ = select.select([0, wake_r, *done], [], [])
        except InterruptedError:
            readable = [wake_r]
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        for fd in readable:
            if fd in done:
                request_id, pid = done.pop(fd)
                finished = os.read(fd, 1) == b"d"  # EOF: it exited, or exec'd evaluate.py; its exit will tell
                os.close(fd)
                if finished and children.get(pid) == request_id:
                    _reply({"id": request_id, "done": True, "spare": spare and spare.pid})
        if 0 in readable:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                # the server (or the cluster worker that started us) went away: nobody will read the
                # results of the children still running, so they end with it
                for pid in children:
                    _kill(pid)
                if spare is not None:
                    spare.discard()
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if "kill" in request:  # a timeout: the server cannot signal pids of our namespace itself
                    for pid, request_id in children.items():
                        if request_id == request["kill"]:
                            _kill(pid)
                    continue
                start(request)
        reaped, replies = False, []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            if spare is not None and pid == spare.pid:  # it died before it was needed
                spare.discard(reaped=True)
                spare = None
            request_id = children.pop(pid, None)
            if request_id is None:
                continue  # a discarded spare, an orphan we adopted (PID 1 under bubblewrap), a stranger
            try:
                os.killpg(pid, signal.SIGKILL)  # whatever the candidate started and left in its group
            except OSError:
                pass
            if os.WIFSIGNALED(status):
                replies.append({"id": request_id, "exit": None, "signal": os.WTERMSIG(status)})
            else:
                replies.append({"id": request_id, "exit": os.WEXITSTATUS(status), "signal": None})
        if in_bwrap and reaped:
            # candidates share this namespace, so what one left behind (a setsid'd daemon, say) ends
            # before its evaluation is reported; killing it makes its own children ours in turn
            spare_pid = spare.pid if spare is not None else None
            for stranger in _strangers([*children, spare_pid]):
                _kill(stranger)
        for reply in replies:
            _reply({**reply, "spare": spare and spare.pid})


def main():
    if "--serve" in sys.argv:
        preload = sys.argv[sys.argv.index("--serve") + 1:]
        serve([p for p in preload if p], in_bwrap="--bwrap" in sys.argv)
        return
    # one-shot mode: a fresh interpreter per candidate (the baseline of bench/eval_cost.py)
    spec = json.loads(sys.stdin.read())
    run_child(spec)


if __name__ == "__main__":
    main()
