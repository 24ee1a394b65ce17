"""Entry point of the sandboxed child that runs one candidate.

Run as `python -I child.py` (by path: it imports nothing from evomcp). It reads a
JSON spec on stdin, locks itself down (rlimits, optional user+net namespace),
then runs the candidate and writes one JSON document to the result pipe. The
candidate's own stdout/stderr stay on fds 1 and 2, which the parent caps.
"""

import ctypes
import importlib.util
import json
import math
import os
import resource
import sys
import traceback

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


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
        soft, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def _isolate_network():
    """Enter fresh user and network namespaces: no interface but a downed loopback."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return "none"
        return "netns"
    except OSError:
        return "none"


def _jsonable(value, depth=0):
    if depth > 50:
        raise ValueError("result nests too deeply")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, str):
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


def _run(spec):
    kind = spec["kind"]
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
        if not isinstance(metrics, dict):
            return {"ok": False, "error": f"evaluate() returned {type(metrics).__name__}, expected a dict"}
        return {"ok": True, "value": _jsonable(metrics)}
    return {"ok": False, "error": f"unknown child kind {kind!r}"}


def main():
    spec = json.loads(sys.stdin.read())
    result_fd = spec["result_fd"]
    os.set_inheritable(result_fd, False)
    isolation = _isolate_network() if spec.get("isolate_network") else "none"
    _apply_limits(spec.get("limits", {}))
    if spec["kind"] == "script":
        os.close(result_fd)
        sys.stdout.flush()
        argv = [sys.executable, "-I", spec["evaluate_path"], "--program_path", spec["program_path"],
                "--results_dir", spec["results_dir"]]
        os.execv(sys.executable, argv)
    try:
        outcome = _run(spec)
    except SystemExit as exc:
        outcome = {"ok": False, "error": f"the program called sys.exit({exc.code!r}) instead of returning"}
    except MemoryError:
        outcome = {"ok": False, "error": "MemoryError: the program exceeded its memory limit"}
    except RecursionError:
        outcome = {"ok": False, "error": "RecursionError: unbounded recursion"}
    except BaseException as exc:  # noqa: BLE001 - everything the candidate raises is data
        tb = traceback.format_exc(limit=-8)
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": tb[-4000:]}
    outcome["isolation"] = isolation
    try:
        data = json.dumps(outcome).encode()
    except (TypeError, ValueError) as exc:
        data = json.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}"}).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    view = memoryview(data)
    while view:
        written = os.write(result_fd, view)
        view = view[written:]
    os.close(result_fd)
    os._exit(0)


if __name__ == "__main__":
    main()
