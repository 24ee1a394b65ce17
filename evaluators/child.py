"""The sandboxed side of an evaluation: a warm fork server and the child it forks per candidate.

Run by path with `python -I child.py --serve`; it imports nothing of evomcp. It starts
with an environment already scrubbed of secrets, imports the heavy libraries once,
then reads one JSON request a line on stdin. For each it forks a child that:

1. starts its own session, points fds 0/1/2 at /dev/null and capped files in its
   private working directory, and takes the environment of the request;
2. enters fresh user, network, PID and mount namespaces where the kernel allows
   (no network, no view of other processes, the archive and secret files hidden) as
   PID 1 of its PID namespace: when it ends, every process it started ends with it (a
   root template forks it into a new PID namespace; otherwise it forks once more and
   waits outside). Where the kernel refuses, the server may start this template
   inside bubblewrap instead (`--bwrap`): one sandbox with no network,
   its own PID namespace and a read-only view of the machine, shared by the children;
   the template is PID 1 there and kills whatever a finished child left behind;
3. binds its work directory in, drops every privilege and loads the seccomp filter
   (a spare child does this too before its candidate is known, in a work directory
   the server made ahead), applies rlimits and runs the candidate, then writes one
   JSON document to `result.json` and exits without running any atexit code.

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
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET  # plus a user one where needed
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SANDBOX_ID = 65534  # the uid and gid a root server's candidates run as (nobody)
DEFAULT_PROCESSES = 256  # processes (and threads) a candidate with namespaces of its own may have at once
STAGE = "/.evomcp-stage"  # where a prepared child sees the work root until its own work dir is known
# Stand-ins for the parts of ShinkaEvolve and OpenEvolve that task evaluators import (`shinka.core`,
# `openevolve.evaluation_result`): read-only in every child's view, on the sys.path of evaluators only,
# after the installed packages (a peer that is really installed wins). Never on the server's sys.path.
PEER_COMPAT = os.path.join(os.path.dirname(os.path.realpath(__file__)), "peer_compat")
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(os.uname().machine)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


# ---------------------------------------------------------------- isolation
#
# A child with namespaces of its own gets, before any candidate code runs:
#   * new mount, PID, network, IPC and UTS namespaces; where the server is root, no user namespace
#     (the candidate later becomes uid/gid SANDBOX_ID, which drops every capability), otherwise a
#     user namespace mapping only the server's own uid, whose capabilities are dropped before the
#     candidate runs: no process of the candidate holds a capability over its mounts;
#   * a fresh root: a tmpfs holding read-only binds of an allowlist (system libraries, the Python
#     installation and its packages), its own /proc, a minimal /dev, size-capped /tmp and /dev/shm,
#     and its work directory, the only writable place that outlives it; pivot_root into it and the
#     old root detached, so nothing else of the machine is reachable;
#   * no_new_privs and a seccomp filter (mount, unshare, setns, ptrace, bpf, keyctl, ... refused,
#     and its parent-death signal cannot be cleared): it cannot rebuild or leave this view.
# The child is PID 1 of its namespace and dies with its parent (the template, or, without root, a
# process outside that waits for it), which the template kills when the evaluation ends: the whole
# namespace dies with it.


def _check(ret, what):
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _remount_ro(target, extra=0):
    """Make one mount read-only, keeping the flags the kernel would refuse to clear (locked in a user namespace)."""
    current = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra
    for st_flag, ms_flag in ((os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
                             (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if current & st_flag:
            flags |= ms_flag
    _mount(None, target, None, flags)


def runs_as_root():
    """Whether candidates start as real root here and so become SANDBOX_ID (root, with that id mapped
    in our user namespace: not so in a user namespace that maps only root, say)."""
    if os.geteuid() != 0:
        return False
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/self/{name}") as f:
                ranges = [tuple(map(int, line.split())) for line in f if line.strip()]
        except OSError:
            return False
        if not any(inside <= SANDBOX_ID < inside + count for inside, _, count in ranges):
            return False
    return True


def _unshare(pid=True):
    """Enter new namespaces: 'root' (no user namespace: we are root), 'user' (a user namespace
    mapping our own uid), or None where the kernel refuses both. `pid=False`: no new PID namespace
    (we are PID 1 of one already, see _fork)."""
    uid, gid = os.geteuid(), os.getegid()
    spaces = NAMESPACES if pid else NAMESPACES & ~CLONE_NEWPID
    if runs_as_root() and _libc.unshare(spaces) == 0:
        return "root"
    if _libc.unshare(CLONE_NEWUSER | spaces) != 0:
        return None
    inside_uid, inside_gid = uid or SANDBOX_ID, gid or SANDBOX_ID  # never root inside
    for name, text in (("setgroups", "deny"), ("uid_map", f"{inside_uid} {uid} 1"),
                       ("gid_map", f"{inside_gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return "user"


def namespaces_allowed():
    """Whether this kernel lets us enter the namespaces a child uses (tried in a throwaway fork)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if _unshare() else 1)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)  # retried on EINTR by Python itself (PEP 475)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _become_pid_one():
    """Fork so that the caller continues as PID 1 of the new PID namespace; returns the read end of
    a pipe whose EOF means the process outside (our parent) is gone.

    The parent stays behind, outside the namespace, only to pass the exit status on (128 + signal
    number when the candidate was killed by a signal); when it is killed, we die (parent-death
    signal), and with us everything in the namespace.
    """
    alive_r, alive_w = os.pipe()
    pid = _fork_patiently()
    if pid is None:
        raise OSError(errno.EAGAIN, "the process limit is still reached by an earlier candidate")
    if pid == 0:
        os.close(alive_w)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return alive_r
    os.close(alive_r)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _make_file(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))


def _hide_in(new, paths):
    """Cover, inside the new root, what must stay hidden although it lies within an allowlisted folder."""
    for path in paths:
        target = new + os.path.realpath(path)
        if not os.path.lexists(target) or os.path.islink(target):
            continue
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0555")
        else:
            _mount("/dev/null", target, None, MS_BIND)


def _build_root(view, hide, work_root):
    """Build the candidate's filesystem in a tmpfs and pivot into it (see the comment above)."""
    new = os.path.join(work_root, ".root")
    os.makedirs(new, mode=0o755, exist_ok=True)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    os.mkdir(new + "/dev")
    _mount("tmpfs", new + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755")
    for node in ("null", "zero", "full", "random", "urandom"):
        _make_file(f"{new}/dev/{node}")
        _mount(f"/dev/{node}", f"{new}/dev/{node}", None, MS_BIND)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{new}/dev/{name}")
    for folder, size in (("/dev/shm", view["shm_bytes"]), ("/tmp", view["tmp_bytes"])):
        os.makedirs(new + folder, exist_ok=True)
        _mount("tmpfs", new + folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},nr_inodes=16384,mode=1777")
    for path in view["ro"]:  # after /tmp: a Python installed under /tmp is bound on top of it
        if not os.path.exists(path) or (path + "/").startswith(work_root.rstrip("/") + "/"):
            continue
        target = new + path
        if path in _FILE_COPIES:  # a small file of /etc: a copy costs less than a bind and its remount
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(_FILE_COPIES[path])
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            _make_file(target)
        _mount(path, target, None, MS_BIND)
        _remount_ro(target)
    for path, link in view["links"].items():
        os.makedirs(os.path.dirname(new + path), exist_ok=True)
        os.symlink(link, new + path)
    _hide_in(new, hide)
    os.mkdir(new + "/proc")
    _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _remount_ro(new + "/dev", MS_NOEXEC)
    # the folder of work directories: a read-only tmpfs holding only this child's, bound in later
    os.makedirs(new + work_root, exist_ok=True)
    _mount("tmpfs", new + work_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=64,mode=0755")
    os.mkdir(new + STAGE, 0o700)
    _mount(work_root, new + STAGE, None, MS_BIND)
    os.chdir(new)
    _check(_libc.syscall(_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def _enter_workdir(workdir):
    """Bind this child's work directory in, then make everything else read-only for good."""
    work_root, name = os.path.split(workdir)
    os.mkdir(workdir)
    _mount(f"{STAGE}/{name}", workdir, None, MS_BIND)
    _check(_libc.umount2(STAGE.encode(), MNT_DETACH), "detach the work root")
    os.rmdir(STAGE)
    _remount_ro(work_root)
    _remount_ro("/")


def _become_sandbox_id(real=True):
    """uid and gid SANDBOX_ID, no supplementary group: from root, this drops every capability.
    `real=False`: the real uid stays 0 for now (see _take_real_uid)."""
    os.setgroups([])
    os.setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
    os.setresuid(SANDBOX_ID if real else -1, SANDBOX_ID, SANDBOX_ID)


def _take_real_uid():
    """The last step of becoming SANDBOX_ID for a spare that locked down ahead: its real uid, which stayed 0
    so that a waiting spare is not counted as a process of SANDBOX_ID (RLIMIT_NPROC: its candidate may
    have as many as before). Its effective and saved uids are SANDBOX_ID and it holds no capability
    already; changing the real uid alone keeps the parent-death signal."""
    os.setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
    if os.getresuid() != (SANDBOX_ID, SANDBOX_ID, SANDBOX_ID):
        raise OSError(errno.EPERM, "the real uid did not become the sandbox's")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_privileges(mode, real=True):
    """No capability left in any set, as SANDBOX_ID where we were root (`real=False`: but the real uid,
    see _take_real_uid); no_new_privs."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    if mode == "root":
        _become_sandbox_id(real)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "drop capabilities")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


# Syscalls a candidate never needs and an escape would: refused with EPERM by the seccomp filter.
DENIED_SYSCALLS = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "ptrace", "process_vm_readv",
    "process_vm_writev", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "syslog", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "sethostname", "setdomainname", "vhangup", "kcmp",
    "pidfd_getfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "lookup_dcookie", "nfsservctl",
    "uselib", "personality",
)
_NEW_NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                        CLONE_NEWNET)
_TIOCSTI = 0x5412


def seccomp_filter():
    """The filter every sandboxed child loads (libseccomp through pyseccomp); built once in the template."""
    import pyseccomp as sc

    refuse = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(sc.ALLOW)
    try:  # no speculation mitigations forced on for being filtered: a candidate holds no secret of its own
        rules.set_attr(sc.Attr.CTL_SSB, 1)
    except (AttributeError, OSError):
        pass
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(refuse, name)
        except (OSError, ValueError):
            pass  # not a syscall of this architecture
    for flag in _NEW_NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags sit in memory the filter cannot read: libc falls back to clone
    rules.add_rule(refuse, "prctl", sc.Arg(0, sc.EQ, PR_SET_PDEATHSIG))
    rules.add_rule(refuse, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
    return rules


_SYSTEM_FILES = ("/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                 "/etc/timezone", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/os-release",
                 "/etc/alternatives", "/etc/mime.types")
_MERGED_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_NEVER_WHOLE = ("/", "/root", "/home", "/tmp", "/var", "/var/tmp", "/run", "/etc", "/proc", "/sys", "/dev")


def sandbox_view(work_root=None):
    """What a candidate sees, read-only: the system's libraries and tools, this Python and its packages.

    `ro` lists host paths bound at the same place; `links` the top-level folders that are symbolic
    links (merged /usr); `tmp_bytes` and `shm_bytes` cap its private /tmp and /dev/shm.
    """
    links, wanted = {}, list(_SYSTEM_FILES)
    for top in _MERGED_DIRS:
        if os.path.islink(top):
            links[top] = os.readlink(top)
        elif os.path.isdir(top):
            wanted.append(top)
    python = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.realpath(sys.executable)), *sys.path]
    wanted += [os.path.realpath(p) for p in python if p and os.path.isdir(p)]
    wanted += [p for p in python if p and os.path.isdir(p) and not os.path.islink(p)]
    if os.path.isdir(PEER_COMPAT):
        wanted.append(PEER_COMPAT)
    chosen = []
    for path in sorted(set(wanted), key=len):
        path = path.rstrip("/") or "/"
        if path in _NEVER_WHOLE or not os.path.lexists(path):
            continue
        if work_root and (path + "/").startswith(work_root.rstrip("/") + "/"):
            continue
        if any((path + "/").startswith(done + "/") for done in chosen):
            continue  # already inside a bound folder
        chosen.append(path)
    return {"ro": sorted(chosen), "links": links, "tmp_bytes": 64 * 1024**2, "shm_bytes": 64 * 1024**2}


VIEW = None  # the template's sandbox_view(), the same for every child
_FILE_COPIES = {}  # small files of the view read once by the template, written into each child's root


def _read_small_files(view, cap=1 << 20):
    """The view's plain files under /etc (ld.so.cache, passwd, ...), read once: a child's root gets copies."""
    copies = {}
    for path in view["ro"]:
        if path.startswith("/etc/") and os.path.isfile(path):
            try:
                with open(path, "rb") as f:
                    data = f.read(cap + 1)
            except OSError:
                continue
            if len(data) <= cap:
                copies[path] = data
    return copies


_SECCOMP = None  # the template's filter, loaded by each child


def _harden(alive_r, done_fd=None):
    """Last steps before candidate code: die with our parent (the process outside, or the template),
    then the seccomp filter."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # again: a uid change cleared it
    if alive_r is not None:
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(0)  # our parent outside died before the line above took effect
        os.close(alive_r)
    elif done_fd is not None:
        waiting = select.poll()
        waiting.register(done_fd, select.POLLOUT)
        if any(events & select.POLLERR for _, events in waiting.poll(0)):
            os._exit(0)  # the template (the done pipe's reader) died before the line above took effect
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if _SECCOMP is None:
        raise OSError(errno.ENOSYS, "no seccomp filter: install libseccomp (apt install libseccomp2)")
    _SECCOMP.load()


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
    if spec.get("build") is not None and kind in ("entry", "check"):
        return _build_and_run(spec)  # a program in another language: build it, run it, its stdout is the data
    if kind == "entry":
        module = _load_module("candidate", spec["program_path"])
        entry = getattr(module, spec["entry"], None)
        if not callable(entry):
            return {"ok": False, "error": f"the program defines no function {spec['entry']}()"}
        return {"ok": True, "value": _jsonable(entry())}
    if kind == "evaluate_fn":
        sys.path.insert(0, spec["task_dir"])
        sys.path.append(PEER_COMPAT)
        module = _load_module("task_evaluate", spec["evaluate_path"])
        cascade = spec.get("cascade")
        if cascade and callable(getattr(module, "evaluate_stage1", None)):
            metrics, artifacts = _cascade(module, spec["program_path"], cascade["thresholds"],
                                          cascade.get("stage_timeout_s"))
        else:
            metrics, artifacts = _metrics_of(module.evaluate(spec["program_path"]))
        if not isinstance(metrics, dict):
            return {"ok": False, "error": f"evaluate() returned {type(metrics).__name__}, expected a dict"}
        if artifacts and "text_feedback" not in metrics:  # OpenEvolve's artifacts become feedback
            metrics["text_feedback"] = "\n".join(f"{k}: {v}" for k, v in artifacts.items())[:8000]
        return {"ok": True, "value": _jsonable(metrics)}
    if kind == "score":
        sys.path.append(PEER_COMPAT)
        # the split contract: the task's score(data) on what a candidate returned; no candidate code runs here
        sys.path.insert(0, spec["task_dir"])
        module = _load_module("task_evaluate", spec["evaluate_path"])
        name = spec.get("score_name", "score")
        score = getattr(module, name, None)
        if not callable(score):
            return {"ok": False, "error": f"the task's evaluate module defines no function {name}()"}
        metrics = score(spec["value"])
        if not isinstance(metrics, dict):
            return {"ok": False, "error": f"{name}() returned {type(metrics).__name__}, expected a dict"}
        return {"ok": True, "value": _jsonable(metrics)}
    return {"ok": False, "error": f"unknown child kind {kind!r}"}


# ---------------------------------------------------------------- programs in other languages
#
# A job with `build` holds a program in another language (evaluators/languages.py): the child builds
# it with the job's commands, each a subprocess of the candidate's own (so under its namespaces, uid,
# seccomp filter and rlimits, and killed with it), in the work directory, with HOME, TMPDIR and the
# compilers' caches pointed there; then runs the binary, whose stdout is the program's data. A "check"
# job only runs its steps (a syntax check). The template resolves each command's first word on its own
# machine before it forks (`_resolve_commands`); a toolchain outside the view (a rustup toolchain, an
# /opt install) is bound read-only into that child's root like the rest of the view.

_TOOLS = {}  # tool name -> (path, folders to bind) or None: resolved once per template
_PROGRAM_OUTPUT_MAX = 4 * 1024**2  # what a built program may print as its data
_TOOLCHAIN_TOPS = ("/", "/root", "/home", "/opt", "/usr", "/usr/local", "/tmp", "/var", "/srv", "/etc")


def _in_view(path):
    view = VIEW or sandbox_view()
    return any((path + "/").startswith(p.rstrip("/") + "/") for p in view["ro"])


def _resolve_tool(name):
    """(the path to run, the folders of its toolchain to bind) for a command's first word; None if absent."""
    if name in _TOOLS:
        return _TOOLS[name]
    import shutil
    import subprocess

    found = shutil.which(name) if "/" not in name else (name if os.access(name, os.X_OK) else None)
    resolved = None
    if found:
        real = os.path.realpath(found)
        if os.path.basename(real) in ("rustup", "rustup-init"):  # a proxy: the toolchain's own binary
            try:
                real = subprocess.run([real, "which", name], capture_output=True, text=True, timeout=60,
                                      stdin=subprocess.DEVNULL).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                real = ""
            real = os.path.realpath(real) if real and os.path.isfile(real) else ""
        if real and _in_view(real):
            resolved = (found if os.path.realpath(found) == real else real, ())  # the proxy's target, if one
        elif real:
            top = os.path.dirname(real)
            if os.path.basename(top) == "bin":
                top = os.path.dirname(top)  # a toolchain's prefix: bin/, lib/, its sysroot
            resolved = (real, (top,) if top not in _TOOLCHAIN_TOPS and top not in _NEVER_WHOLE else (real,))
    _TOOLS[name] = resolved
    return resolved


def _resolve_commands(spec):
    """Resolve the first word of each command of a build job, in place; note the toolchains to bind and
    the tools this machine lacks."""
    build = spec.get("build")
    if not build:
        return
    folders, missing = [], []
    for argv in [*build.get("steps", []), build.get("run") or []]:
        if not argv or argv[0].startswith("{"):
            continue  # {binary}: what the build made
        found = _resolve_tool(argv[0])
        if found is None:
            missing.append(argv[0])
            continue
        argv[0] = found[0]
        folders += [f for f in found[1] if f not in folders]
    build["missing"] = missing
    spec["toolchains"] = folders


def _with_toolchains(view, folders):
    return view if not folders else {**view, "ro": [*view["ro"], *(f for f in folders if f not in view["ro"])]}


def _first_errors(log, lines=12, chars=1500):
    """The head of a compiler's output, from its first error line (warnings before it skipped)."""
    rows = [row.rstrip() for row in log.splitlines() if row.strip()]
    first = next((i for i, row in enumerate(rows) if "error" in row.lower()), 0)
    text = "\n".join(rows[first:first + lines])
    return text if len(text) <= chars else text[:chars] + " ..."


def _read_own(path, cap):
    """Up to `cap` + 1 bytes of a file the candidate's processes wrote (no link followed, never blocking)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _why(exc):
    if exc.errno == errno.EAGAIN:
        return (f" (the process limit was reached: it counts every process of the candidate's user, and a root "
                f"server's candidates share uid {SANDBOX_ID} with the machine's other processes of that uid)")
    return ""


def _ended(code):
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _build_and_run(spec):
    import subprocess

    build, workdir = spec["build"], spec["workdir"]
    if build.get("missing"):
        tools = ", ".join(dict.fromkeys(build["missing"]))
        return {"ok": False, "error": f"{tools} is not installed where candidates run (not found on the sandbox's "
                                      f"PATH): install it on this machine, or give the task another command"}
    source = os.path.basename(spec["program_path"])
    binary = os.path.join(workdir, build.get("binary") or "program")

    def fill(argv):
        return [w.replace("{source}", source).replace("{binary}", binary).replace("{workdir}", workdir)
                for w in argv]

    cache = os.path.join(workdir, ".cache")  # compilers' caches: in the work dir, gone with it
    env = {**os.environ, "XDG_CACHE_HOME": cache, "CCACHE_DIR": os.path.join(cache, "ccache"),
           "GOCACHE": os.path.join(cache, "go"), "CARGO_HOME": os.path.join(workdir, ".cargo"), "PWD": workdir}
    log_path = os.path.join(workdir, "build.log")
    for argv in build.get("steps", []):
        argv = fill(argv)
        with open(log_path, "wb") as log:
            try:
                code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=workdir, env=env)
            except OSError as exc:
                return {"ok": False, "error": f"cannot start {os.path.basename(argv[0])}: {exc}{_why(exc)}"}
        if code != 0:
            text = _read_own(log_path, 1 << 16).decode(errors="replace").replace(workdir + "/", "")
            tool = os.path.basename(argv[0])
            limit = " (its CPU-time limit)" if code == -signal.SIGXCPU else ""
            return {"ok": False, "build_failed": True,
                    "error": f"the program does not compile: {tool} {_ended(code)}{limit}"
                             + (f":\n{_first_errors(text)}" if text.strip() else "")}
    run = build.get("run")
    if spec["kind"] == "check" or not run:
        return {"ok": True, "value": None}
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:  # its stdout is ours (stdout.txt), its stderr too: read back below as its data and shown as tails
        code = subprocess.call(fill(run), stdin=subprocess.DEVNULL, cwd=workdir, env={**os.environ, "PWD": workdir})
    except OSError as exc:
        return {"ok": False, "error": f"cannot start the built program: {exc}{_why(exc)}"}
    if code != 0:
        last = _read_own(os.path.join(workdir, "stderr.txt"), 1 << 16).decode(errors="replace").strip()
        last = last.splitlines()[-1][:300] if last else ""
        return {"ok": False,
                "error": f"the program {_ended(code)}" + (f" (last line of stderr: {last})" if last else "")}
    data = _read_own(os.path.join(workdir, "stdout.txt"), _PROGRAM_OUTPUT_MAX)
    if len(data) > _PROGRAM_OUTPUT_MAX:
        return {"ok": False, "error": f"the program printed more than {_PROGRAM_OUTPUT_MAX // 1024**2} MB on stdout; "
                                      f"print only its result there (diagnostics go to stderr)"}
    return {"ok": True, "value": data.decode(errors="replace")}


def _metrics_of(result):
    """(metrics, artifacts) of what an evaluate function returned: a dict, or OpenEvolve's
    EvaluationResult(metrics=..., artifacts=...) (whichever class it is: the stand-in or the real one)."""
    if not isinstance(result, dict) and isinstance(getattr(result, "metrics", None), dict):
        return dict(result.metrics), dict(getattr(result, "artifacts", None) or {})
    return result, {}


class _StageTimeout(BaseException):
    """A cascade stage ran past its time (a BaseException: an evaluator's `except Exception` lets it through)."""


def _stage(function, program_path, seconds):
    """One cascade stage under its own time limit; (metrics, artifacts)."""
    def expire(signum, frame):
        raise _StageTimeout()

    previous = signal.signal(signal.SIGALRM, expire) if seconds else None
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        metrics, artifacts = _metrics_of(function(program_path))
    finally:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if not isinstance(metrics, dict):
        raise TypeError(f"{function.__name__}() returned {type(metrics).__name__}, expected a dict")
    return metrics, artifacts


def _passes(metrics, threshold):
    """OpenEvolve's cascade test: combined_score if it is a number, else the mean of the numeric metrics
    other than `error`, at least the threshold."""
    score = metrics.get("combined_score")
    if isinstance(score, (int, float)):
        return float(score) >= threshold
    values = [float(v) for k, v in metrics.items() if k != "error" and isinstance(v, (int, float))]
    return bool(values) and sum(values) / len(values) >= threshold


def _numeric(metrics):
    return {k: float(v) for k, v in metrics.items() if k != "error" and isinstance(v, (int, float))}


def _cascade(module, program_path, thresholds, seconds):
    """OpenEvolve's cascade: evaluate_stage1, then evaluate_stage2 and 3 only while the metrics so far reach
    the stage's threshold; later stages' numeric metrics merge into the earlier ones. A stage after the first
    that fails or times out keeps the metrics so far, with `stageN_passed: 0.0`. Returns (metrics, artifacts)."""
    try:
        metrics, artifacts = _stage(module.evaluate_stage1, program_path, seconds)
    except _StageTimeout:
        raise TimeoutError(f"evaluate_stage1 ran past the stage time limit of {seconds:g} s") from None
    for stage in (2, 3):
        threshold = thresholds[stage - 2] if len(thresholds) >= stage - 1 else None
        function = getattr(module, f"evaluate_stage{stage}", None)
        if not callable(function):
            return metrics, artifacts
        if threshold is None or not _passes(metrics, threshold):
            artifacts.setdefault("cascade", f"stopped after stage {stage - 1}: " + (
                f"its metrics did not reach the threshold {threshold} of stage {stage}" if threshold is not None
                else f"no threshold is set for stage {stage}"))
            return metrics, artifacts
        try:
            more, more_artifacts = _stage(function, program_path, seconds)
        except _StageTimeout:
            metrics.update({f"stage{stage}_passed": 0.0, "timeout": True})
            artifacts.update({f"stage{stage}_timeout": True, "failure_stage": f"stage{stage}"})
            return metrics, artifacts
        except Exception as exc:  # noqa: BLE001 - a later stage's failure keeps the earlier metrics
            metrics[f"stage{stage}_passed"] = 0.0
            artifacts.update({f"stage{stage}_stderr": str(exc), "failure_stage": f"stage{stage}",
                              f"stage{stage}_traceback": traceback.format_exc(limit=-4)[-2000:]})
            return metrics, artifacts
        metrics = {**_numeric(metrics), **_numeric(more)}
        artifacts.update(more_artifacts)
    return metrics, artifacts


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


_IN_BWRAP = False  # this template runs inside bubblewrap: children cannot have namespaces of their own


def _prepare(key, pid_one=False):
    """What a child does before it runs anything of the candidate: session, namespaces, PID 1, its root.

    Nothing here depends on the candidate, so a spare child does it ahead of time. Returns how the
    child is isolated ("root" or "user" namespaces, else "none") and, with namespaces, the pipe that
    tells whether the process outside is still there.
    """
    isolate, hide, work_root, toolchains = key
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the template
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (one-shot mode)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    if isolate and not _IN_BWRAP:
        mode = _unshare(pid=not pid_one)
        if mode is not None:
            alive_r = None if pid_one else _become_pid_one()
            _build_root(_with_toolchains(VIEW or sandbox_view(work_root), toolchains), list(hide), work_root)
            return mode, alive_r
    return "none", None


# How a script evaluator starts (`python -I -c _SCRIPT_BOOT script compat result.json args...`): its folder
# first on sys.path as for `python script`, the stand-ins last; an exception it lets out is written to
# result.json as what it is (type, message, traceback), not only as an exit code.
_SCRIPT_BOOT = """
import json, os, runpy, sys, traceback
script, compat, result = sys.argv[1:4]
sys.argv = [script, *sys.argv[4:]]
sys.path.insert(0, os.path.dirname(script))
sys.path.append(compat)
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    raise
except BaseException as exc:
    text = traceback.format_exc(limit=-8)
    sys.stderr.write(text)
    with open(result, "w") as f:
        json.dump({"ok": False, "error": (type(exc).__name__ + ": " + str(exc))[:2000], "traceback": text[-4000:]}, f)
    sys.exit(1)
"""


def _lock_down(workdir, mode, alive_r, done_fd, ahead=False):
    """With namespaces: bind the work directory in, drop every privilege, no_new_privs and the seccomp
    filter. From here on the child cannot change its view or its filter, nor take any id but SANDBOX_ID
    (`ahead`: a spare before its candidate is known, whose real uid is taken last, see _take_real_uid)."""
    _enter_workdir(workdir)
    _drop_privileges(mode, real=not ahead)
    _harden(alive_r, done_fd)


_OUTPUT_FILES = ("stdout.txt", "stderr.txt", "result.json")


def _make_output_files(workdir, mode):
    """A spare makes the files a candidate writes ahead, empty and the candidate's own: creating a file
    costs a busy ext4 /tmp most of a millisecond (its inode allocator skips recently deleted inodes)."""
    owner = SANDBOX_ID if mode == "root" else None
    for name in _OUTPUT_FILES:
        fd = os.open(f"{STAGE}/{os.path.basename(workdir)}/{name}",
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if owner is not None:
                os.fchown(fd, owner, owner)
        finally:
            os.close(fd)


def _run(spec, prepared, done_fd):
    """Run the candidate of `spec` in its work directory, write result.json and exit: never returns.

    `prepared`: (mode, alive_r, locked), see _prepare; `locked` is the work directory a spare already
    locked itself down in (_lock_down), or None."""
    mode, alive_r, locked = prepared
    isolation = []
    isolate = spec.get("isolate", True)
    if mode == "none" and _IN_BWRAP and isolate and runs_as_root():
        _drop_privileges("root")  # bubblewrap's user namespace maps SANDBOX_ID (a root server's)
    if mode != "none":
        if locked is None:
            _lock_down(spec["workdir"], mode, alive_r, done_fd)
        elif locked != spec["workdir"]:
            raise RuntimeError(f"a child locked down in {locked} was handed the work directory {spec['workdir']}")
        elif mode == "root":
            _take_real_uid()
        isolation += ["namespaces", "seccomp"]
    elif isolate:
        _harden(alive_r, done_fd)
        isolation.append("seccomp")
    if mode != "none" or (_IN_BWRAP and isolate):
        # processes are counted per user namespace and uid: this caps the candidate's own (under
        # bubblewrap, those of the shared sandbox), also where no pids cgroup can be made
        nproc = spec.get("limits", {}).get("processes") or DEFAULT_PROCESSES
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    isolation = "+".join(isolation) or "none"
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
        # as ShinkaEvolve runs it: a plain script in its folder (its siblings importable), plus the stand-ins
        os.chdir(os.path.dirname(spec["evaluate_path"]))
        argv = [sys.executable, "-I", "-c", _SCRIPT_BOOT, spec["evaluate_path"], PEER_COMPAT,
                os.path.join(workdir, "result.json"), "--program_path", spec["program_path"],
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
    # what `ps` shows from here on: no longer a running candidate, though the end of its namespaces (its exit
    # as their last process) takes a while
    _libc.prctl(PR_SET_NAME, b"evomcp-done", 0, 0, 0)
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
        _resolve_commands(spec)
        _run(spec, (*_prepare(_key(spec)), None), None)
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        _die_quietly("child")


def _child_main(spec, key, done_w, spec_r, workdir=None, pid_one=False):
    """A child of the template, forked for `spec`, or as a spare (spec None) prepared for `key`, and
    with namespaces locked down in `workdir` (the work directory of the request it will be handed).
    `pid_one`: it was forked as PID 1 of a new PID namespace (see _fork)."""
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
        mode, alive_r = _prepare(key, pid_one)
        locked = None
        if spec is None and workdir is not None and mode != "none":
            _make_output_files(workdir, mode)
            _lock_down(workdir, mode, alive_r, DONE_FD, ahead=True)  # no candidate code has run in this process yet
            alive_r, locked = None, workdir
        prepared = (mode, alive_r, locked)
        if spec is None:
            chunks = []
            while chunk := os.read(SPEC_FD, 1 << 16):
                chunks.append(chunk)
            if not chunks:
                os._exit(0)  # the template discarded this spare
            os.close(SPEC_FD)
            spec = json.loads(b"".join(chunks))
        _run(spec, prepared, DONE_FD)
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        _die_quietly("child")


def _key(spec):
    """What a spare must have been prepared for to serve `spec` (a build's toolchains outside the view too)."""
    return (bool(spec.get("isolate", True)), tuple(spec.get("hide", [])), os.path.dirname(spec["workdir"]),
            tuple(spec.get("toolchains", ())))


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


_OWN_PID_NS = None  # a root template's own PID namespace (an fd), to return to after forking a child into a new one


def _fork(key, patient=False):
    """fork() a child for `key`: (pid, pid_one). Where we are root and the child gets namespaces, it is
    forked as PID 1 of a new PID namespace (pid_one), so that no process waits outside it: that one
    (see _become_pid_one) costs a fork and an exit of a process with numpy mapped, milliseconds each.
    `patient`: retried while the pids cgroup refuses (see _fork_patiently); pid None if still refused."""
    fork = _fork_patiently if patient else os.fork
    if not (key[0] and not _IN_BWRAP and _OWN_PID_NS is not None and _libc.unshare(CLONE_NEWPID) == 0):
        return fork(), False
    try:
        pid = fork()
    except BaseException:
        pid = None
        raise
    finally:
        # the template's next children are of its own namespace again (the child keeps the new one); a template
        # that cannot return would fork every later child into this one: it ends, and the server starts another
        if pid != 0 and _libc.setns(_OWN_PID_NS, CLONE_NEWPID) != 0:
            os.write(2, b"sandbox template: cannot return to its own PID namespace\n")
            os._exit(70)
    return pid, True


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


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def remove_tree(path):
    """Remove `path` and all below it, whatever a candidate left there: no link is followed, a FIFO
    swapped in for a folder cannot block (O_DIRECTORY | O_NONBLOCK), depth costs no recursion, and a
    folder whose owner made it unreadable is opened up first (we own it, or are root)."""
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError:
        try:
            os.unlink(path)  # a file or a link in its place
        except OSError:
            pass
        return
    stack = [(top, None, None)]  # (folder fd, its parent's fd, its name in the parent)
    while stack:
        fd, parent, name = stack[-1]
        deeper = None
        try:
            entries = list(os.scandir(fd))
        except OSError:
            entries = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    try:
                        deeper = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                    except PermissionError:
                        os.chmod(entry.name, 0o700, dir_fd=fd)
                        deeper = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                    stack.append((deeper, fd, entry.name))
                    break
                os.unlink(entry.name, dir_fd=fd)
            except OSError:
                deeper = None
        if deeper is not None:
            continue
        stack.pop()
        os.close(fd)
        try:
            if parent is None:
                os.rmdir(path)
            else:
                os.rmdir(name, dir_fd=parent)
        except OSError:
            pass


def _sweep_shared_tmp(keep):
    """Under bubblewrap the children share /tmp and /dev/shm: empty them once none is running, so that
    nothing a candidate left there reaches the next one. `keep`: paths (the work root, a Python bound
    under /tmp) whose top folders stay. Returns whether anything else is left."""
    left = False
    for folder in ("/tmp", "/dev/shm"):
        kept = {p[len(folder) + 1:].split("/")[0] for p in keep if p.startswith(folder + "/")}
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name not in kept:
                remove_tree(os.path.join(folder, name))
                left = left or os.path.lexists(os.path.join(folder, name))
    return left


def _sweep_as_candidates(keep):
    """_sweep_shared_tmp, as SANDBOX_ID where candidates run as that uid: their files are theirs, and
    the template holds no capability to remove them from the sticky /tmp (and wants none). Returns
    whether anything is left."""
    if not runs_as_root():
        return _sweep_shared_tmp(keep)
    pid = _fork_patiently()
    if pid is None:
        return True
    if pid == 0:
        try:
            _become_sandbox_id()
            os._exit(1 if _sweep_shared_tmp(keep) else 0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)


def _process_tree_of(pid):
    """`pid` and its children (the spare: the process outside its namespace and the one inside)."""
    if not pid:
        return set()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {pid, *map(int, f.read().split())}
    except OSError:
        return {pid}


def _end_all_but(keep):
    """Under bubblewrap, once no candidate runs: kill every process of the sandbox but `keep` (this
    template, its spare), however deep a candidate hid them (a chain of setsid'd forks, say)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in keep:
            _kill(int(entry))


class _Spare:
    """A child forked and prepared (session, namespaces, PID 1, its root) before its candidate is known.

    Given `workdir`, a work directory the server made ahead for a later request, it also binds that
    in, drops its privileges and loads the seccomp filter ahead (_lock_down): only the request whose
    work directory it is can be handed to it."""

    def __init__(self, key, workdir=None):
        self.key = key
        self.workdir = workdir
        self.pid = self.spec_w = self.done_r = None
        done_r, done_w = os.pipe()
        spec_r, spec_w = os.pipe()
        try:
            self.pid, pid_one = _fork(key)  # one try: a full pids cgroup means no spare, never a wait
        except OSError:
            for fd in (done_r, done_w, spec_r, spec_w):
                os.close(fd)
            return
        if self.pid == 0:
            _child_main(None, key, done_w, spec_r, workdir, pid_one)
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
    global _IN_BWRAP, _SECCOMP, VIEW, _FILE_COPIES, _OWN_PID_NS
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the server, even on kill -9
    if os.getppid() == 1:
        os._exit(0)  # the server died before the line above took effect
    _IN_BWRAP = in_bwrap
    if runs_as_root() and not in_bwrap:
        try:
            _OWN_PID_NS = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            _OWN_PID_NS = None
    VIEW = sandbox_view()
    _FILE_COPIES = _read_small_files(VIEW)
    try:
        _SECCOMP = seccomp_filter()
    except Exception:  # noqa: BLE001 - no libseccomp: children refuse to run candidates, with the reason
        _SECCOMP = None
    if in_bwrap:
        # PID 1 of bubblewrap's namespace (its parent is outside: getppid() is 0). Candidates share
        # this namespace: undumpable, nothing here can be traced or read through /proc by them.
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    for name in preload:
        try:
            __import__(name)
        except ImportError:
            pass
    # a candidate's modules and its copy of the task folder are compiled once and removed with the work dir:
    # writing their bytecode there (a __pycache__ folder, two files) would only cost time
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = {}  # pid -> request id
    done = {}  # read end of a child's done pipe -> (request id, pid)
    spares = []  # children prepared ahead, one per evaluation slot the server has (its requests say how many)
    killed = set()  # children killed (their result is in, or their time is up) and not yet reaped
    ending = False  # something a candidate left could not be removed: the template ends
    reserved = []  # work directories made by the server for spares to lock down in, oldest first
    buffer = b""
    _reply({"ready": True, "pid": os.getpid(), "preloaded": sorted(n for n in preload if n in sys.modules),
            "namespaces": namespaces_allowed(), "bwrap": in_bwrap, "seccomp": _SECCOMP is not None, "view": VIEW})

    work_roots = set()  # under bubblewrap: the /tmp folders that hold work directories

    def spare_pids():
        return [s.pid for s in spares]

    def reap(block=()):
        """Reap the children that ended (first waiting for those in `block`, killed already) and report them;
        under bubblewrap, end what they left behind and, once no child runs, empty the shared /tmp."""
        nonlocal ending
        reaped, replies, stale, block = False, [], False, list(block)
        while True:
            waiting = bool(block)
            try:
                pid, status = os.waitpid(block.pop(), 0) if waiting else os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if waiting:
                    continue  # reaped already
                break
            if pid == 0:
                break
            reaped = True
            killed.discard(pid)
            for dead in [s for s in spares if s.pid == pid]:  # it died before it was needed
                dead.discard(reaped=True)
                spares.remove(dead)
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
            for stranger in _strangers([*children, *spare_pids()]):
                _kill(stranger)
            if not children and work_roots:
                _end_all_but({os.getpid(), *(p for s in spare_pids() for p in _process_tree_of(s))})
                stale = _sweep_as_candidates(work_roots | set(VIEW["ro"]))
        for reply in replies:
            _reply({**reply, "spares": spare_pids()})
        ending = ending or stale

    def start(request):
        """Hand the request to a spare prepared for it, else fork a child for it now; then prepare spares
        for the next requests, as many as the server has evaluation slots."""
        nonlocal spares
        if ending:
            return  # not in a sandbox that could not be emptied: the template ends, the request is lost
        if in_bwrap and children and all(pid in killed for pid in children):
            # the children are told to end and none runs: they are reaped and what they left in the shared
            # sandbox is gone before this one starts (their exit and a request can come in the same round)
            reap(block=list(children))
            if ending:
                return
        _resolve_commands(request["spec"])
        spec, key = request["spec"], _key(request["spec"])
        wanted = spec["workdir"]
        work_roots.add(key[2].rstrip("/"))
        # work directories the server made for later requests, one per spare to come (in its work root)
        reserved.extend(d for d in request.get("prepare", ()) if isinstance(d, str) and os.path.dirname(d) == key[2])
        if wanted in reserved:
            reserved.remove(wanted)
        # a spare prepared for another kind of request, or locked down in a work directory whose request will
        # never come (the server removed it), is discarded; each is judged once, so none is both kept and lost
        useful = {id(s) for s in spares if s.key == key and (s.workdir is None or s.workdir == wanted
                                                             or os.path.isdir(s.workdir))}
        for other in [s for s in spares if id(s) not in useful]:
            other.discard()
        spares = [s for s in spares if id(s) in useful]
        # the spare locked down in this very work directory, else one that binds it in itself; a spare locked
        # down in another one waits for that directory's request
        handed = None
        for candidate in [s for s in spares if s.workdir == wanted] + [s for s in spares if s.workdir is None]:
            spares.remove(candidate)
            if candidate.hand(spec):
                handed = candidate
                break
            candidate.discard()
        if handed is not None:
            pid, done_r = handed.pid, handed.done_r
        else:
            done_r, done_w = os.pipe()
            pid, pid_one = _fork(key, patient=True)
            if pid == 0:
                _child_main(spec, key, done_w, None, pid_one=pid_one)
            os.close(done_w)
            if pid is None:  # the pids cgroup is still full of a previous candidate's processes
                os.close(done_r)
                _reply({"id": request["id"], "pid": None, "exit": None, "signal": None,
                        "error": "the process limit is still reached by an earlier candidate"})
                return
        children[pid] = request["id"]
        done[done_r] = (request["id"], pid)
        _reply({"id": request["id"], "pid": pid, "spares": spare_pids()})
        # the next children prepare while this one runs; their pids go with the replies (the server's view)
        while len(spares) < max(1, min(int(spec.get("spares", 1)), 16)):
            while reserved and not os.path.isdir(reserved[0]):
                reserved.pop(0)
            ahead = reserved[0] if reserved and key[0] and not _IN_BWRAP else None  # only namespaces lock down
            fresh = _Spare(key, ahead)
            if fresh.pid is None:  # the pids cgroup is full: no more spares for now
                break
            if ahead is not None:
                reserved.pop(0)
            spares.append(fresh)

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
                    # the result is complete: whatever the candidate still runs ends now (with namespaces,
                    # killing the process outside takes the whole PID namespace with it)
                    _kill(pid)
                    killed.add(pid)
                    _reply({"id": request_id, "done": True, "spares": spare_pids()})
        if 0 in readable:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                # the server (or the cluster worker that started us) went away: nobody will read the
                # results of the children still running, so they end with it
                for pid in children:
                    _kill(pid)
                for waiting in spares:
                    waiting.discard()
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if "kill" in request:  # a timeout: the server cannot signal pids of our namespace itself
                    for pid, request_id in children.items():
                        if request_id == request["kill"]:
                            _kill(pid)
                            killed.add(pid)
                    continue
                start(request)
        reap()
        if ending:
            break  # something a candidate left could not be removed: end; the server starts a fresh sandbox


def main():
    if "--serve" in sys.argv:
        preload = sys.argv[sys.argv.index("--serve") + 1:]
        serve([p for p in preload if p], in_bwrap="--bwrap" in sys.argv)
        return
    # one-shot mode: a fresh interpreter per candidate (the baseline of bench/eval_cost.py)
    global _SECCOMP
    _SECCOMP = seccomp_filter()
    spec = json.loads(sys.stdin.read())
    run_child(spec)


if __name__ == "__main__":
    main()
