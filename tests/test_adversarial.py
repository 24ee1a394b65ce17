"""Hostile candidates, proposed through the tools like any other: each is recorded with a reason,
the run goes on, no secret is seen, no process is left behind and the archive stays intact.

Every attack runs twice: in children with namespaces of their own, and in the bubblewrap sandbox
that takes over where the kernel refuses those ($EVOMCP_BWRAP=always forces it here).
"""

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import rings_patch
from evomcp.testing import procs
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.workspace import open_workspace

SECRET = "sk-adversarial-test-secret-0123456789"


@pytest.fixture(params=["namespaces", "bwrap"])
def sandbox(request, monkeypatch):
    if request.param == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    monkeypatch.setenv("EVOMCP_BWRAP", "always" if request.param == "bwrap" else "never")
    return request.param


@pytest.fixture
async def ws(db_path, sandbox):
    async with open_workspace(db_path, slots=2) as workspace:
        yield workspace


@pytest.fixture
async def run(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    status = await runs.start_run(ws, "circle_packing_26", config={"timeout_s": 4, "novelty": False})
    return status.run.run_id, status.best


# The seed's fixed run_packing() returns (construct_centers(n), compute_radii(centers)): route both to attack().
ROUTE = """
_attack_result = None


def construct_centers(n):
    global _attack_result
    _attack_result = attack()
    return _attack_result[0] if isinstance(_attack_result, tuple) else _attack_result


def compute_radii(centers):
    return _attack_result[1] if isinstance(_attack_result, tuple) else None
"""


async def propose(ws, run_id, seed, body):
    """Propose a program whose EVOLVE-BLOCK is `body`, with its run_packing() as the attack."""
    parent = await ws.program(run_id, seed.id)
    block = textwrap.dedent(body).replace("def run_packing(", "def attack(") + ROUTE
    before, rest = parent.code.split("# EVOLVE-BLOCK-START\n")
    code = before + "# EVOLVE-BLOCK-START\n" + block + "# EVOLVE-BLOCK-END\n" + rest.split("# EVOLVE-BLOCK-END\n")[1]
    return await steps.propose_candidate(ws, run_id, seed.id, code=code)


async def assert_healthy(ws, run_id, seed):
    """The server still works: a normal change evaluates, the archive passes its integrity check."""
    assert await ws.archive.integrity_check() == "ok"
    assert await procs.leftovers(lambda: ws.executor.helper_pids) == set()
    ok = await steps.propose_candidate(ws, run_id, seed.id, patch=rings_patch(0.23, 0.43))
    assert ok.program.correct, ok.program.error
    return ok


ATTACKS = {
    "infinite loop": ("""
        def run_packing():
            while True:
                pass
        """, "timeout"),
    "8 GB allocation": ("""
        def run_packing():
            block = bytearray(8 * 1024**3)
            return block
        """, "memory limit"),
    "fork bomb": ("""
        import os, time
        def run_packing():
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.05)
        """, "process limit"),
    "grandchild that outlives it": ("""
        import os, time
        def run_packing():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(300)
                os._exit(0)
            raise RuntimeError("parent done")
        """, "parent done"),
    "100 MB of output": ("""
        import sys
        def run_packing():
            line = "x" * 1023 + "\\n"
            for _ in range(100 * 1024):
                sys.stdout.write(line)
        """, "file size limit"),
    "1 GB file": ("""
        def run_packing():
            with open("big.bin", "wb") as f:
                for _ in range(1024):
                    f.write(b"\\0" * 1024 * 1024)
        """, "file size limit"),
    "unbounded recursion": ("""
        def run_packing():
            return attack()
        """, "RecursionError"),
    "segfault through ctypes": ("""
        import ctypes
        def run_packing():
            return ctypes.string_at(0)
        """, "SIGSEGV"),
    "sys.exit(0) before returning": ("""
        import sys
        def run_packing():
            sys.exit(0)
        """, "sys.exit"),
    "NaN radii": ("""
        import numpy as np
        def run_packing():
            return np.full((26, 2), 0.5), np.full(26, np.nan)
        """, "non-finite"),
    "inf centers": ("""
        import numpy as np
        def run_packing():
            return np.full((26, 2), np.inf), np.full(26, 0.01)
        """, "non-finite"),
    "wrong shapes": ("""
        import numpy as np
        def run_packing():
            return np.zeros((3, 3)), np.zeros(7)
        """, "shape"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_recorded_and_contained(ws, run, name):
    run_id, seed = run
    body, reason = ATTACKS[name]
    result = await propose(ws, run_id, seed, body)
    program = await ws.program(run_id, result.program.id)
    assert not program.correct and program.combined_score is None
    assert reason in program.error, program.error
    await assert_healthy(ws, run_id, seed)


async def test_secrets_are_out_of_reach(ws, run):
    run_id, seed = run
    result = await propose(ws, run_id, seed, f"""
        import os, glob
        def run_packing():
            found = []
            for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
                found.append(os.environ.get(key))
            for path in glob.glob("/proc/*/environ"):
                try:
                    if b"{SECRET[:12]}" in open(path, "rb").read():
                        found.append(path)
                except OSError:
                    pass
            try:
                found.append(open("/proc/{os.getpid()}/environ", "rb").read()[:50])
            except OSError:
                pass
            raise RuntimeError("found " + repr(found))
        """)
    program = await ws.program(run_id, result.program.id)
    assert program.error == "RuntimeError: found [None, None]"
    everything = "".join(str(v) for v in program.model_dump().values())
    assert SECRET not in everything
    await assert_healthy(ws, run_id, seed)



async def test_what_a_candidate_locks_away_in_tmp_does_not_reach_the_next_one(ws, run):
    """A folder made unreadable (chmod 0) in /tmp or /dev/shm, with a FIFO and a deep tree beside it:
    the next candidate finds nothing there, and removing it blocks nobody."""
    run_id, seed = run
    await propose(ws, run_id, seed, """
        import os
        def run_packing():
            for folder in ("/tmp", "/dev/shm"):
                os.makedirs(folder + "/locked", exist_ok=True)
                open(folder + "/locked/note", "w").write("left for the next candidate")
                os.mkfifo(folder + "/locked/fifo")
                deep = folder + "/deep"
                for _ in range(200):
                    os.mkdir(deep)
                    deep += "/d"
                os.chmod(folder + "/locked", 0)
            raise RuntimeError("planted")
        """)
    later = await propose(ws, run_id, seed, """
        import os
        def run_packing():
            raise RuntimeError("found " + repr(sorted(n for f in ("/tmp", "/dev/shm") for n in os.listdir(f)
                                                      if n in ("locked", "deep"))))
        """)
    assert (await ws.program(run_id, later.program.id)).error == "RuntimeError: found []"
    await assert_healthy(ws, run_id, seed)

async def test_the_archive_is_hidden(ws, run):
    run_id, seed = run
    db = str(ws.archive.path.resolve())
    result = await propose(ws, run_id, seed, f"""
        def run_packing():
            try:
                data = open({db!r}, "rb").read(64)
            except OSError as exc:
                raise RuntimeError("no access: " + type(exc).__name__)
            raise RuntimeError("read %d bytes" % len(data))
        """)
    program = await ws.program(run_id, result.program.id)
    assert program.error in ("RuntimeError: read 0 bytes",) or "no access" in program.error
    await assert_healthy(ws, run_id, seed)


async def test_no_network_not_even_loopback(ws, run):
    run_id, seed = run
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    result = await propose(ws, run_id, seed, f"""
        import socket
        def run_packing():
            errors = []
            for address in (("127.0.0.1", {port}), ("192.0.2.1", 80)):
                try:
                    socket.create_connection(address, timeout=1).close()
                    errors.append("connected")
                except OSError as exc:
                    errors.append(type(exc).__name__)
            raise RuntimeError(repr(errors))
        """)
    program = await ws.program(run_id, result.program.id)
    assert "connected" not in program.error and program.error.startswith("RuntimeError")
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    await assert_healthy(ws, run_id, seed)


async def test_killing_the_server_or_parent_fails(ws, run, sandbox):
    run_id, seed = run
    template = ws.executor.template_pid
    result = await propose(ws, run_id, seed, f"""
        import os, signal
        def run_packing():
            outcomes = []
            for pid in ({os.getpid()}, os.getppid()):
                if pid <= 0:
                    outcomes.append("no parent in sight")
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    outcomes.append("sent")
                except OSError as exc:
                    outcomes.append(type(exc).__name__)
            raise RuntimeError(repr(outcomes))
        """)
    program = await ws.program(run_id, result.program.id)
    outcomes = program.error.removeprefix("RuntimeError: ")
    assert outcomes.startswith("[") and not outcomes.startswith("['sent'"), "the server's pid was in reach"
    if sandbox == "bwrap":  # the parent is the template, PID 1 of the sandbox: the kernel drops the signal
        assert ws.executor.template_pid == template
    else:
        assert "'sent'" not in outcomes
    await assert_healthy(ws, run_id, seed)


async def test_monkeypatching_cannot_fake_a_score(ws, run):
    run_id, seed = run
    result = await propose(ws, run_id, seed, """
        import json, os
        import numpy as np
        np.sum = lambda *a, **k: 1000.0
        np.all = lambda *a, **k: True
        def run_packing():
            centers = np.full((26, 2), 0.5)
            radii = np.full(26, 0.5)
            return centers, radii
        """)
    program = await ws.program(run_id, result.program.id)
    assert not program.correct and "overlap" in program.error
    forged = await propose(ws, run_id, seed, """
        import json, os
        def run_packing():
            with open("result.json", "w") as f:
                json.dump({"ok": True, "value": [[[0.5, 0.5]] * 26, [0.5] * 26], "isolation": "none"}, f)
            os._exit(0)
        """)
    program = await ws.program(run_id, forged.program.id)
    assert not program.correct and program.combined_score is None
    await assert_healthy(ws, run_id, seed)


async def test_isolation_level_is_reported_and_can_be_required(ws, sandbox):
    if sandbox == "bwrap":
        status = await runs.start_run(ws, "circle_packing_26", config={"require_isolation": "bwrap"})
        assert status.isolation.startswith("bwrap")
        with pytest.raises(EvoError, match="requires isolation 'namespaces'.*bubblewrap"):
            await runs.start_run(ws, "circle_packing_26", config={"require_isolation": "namespaces"})
        return
    status = await runs.start_run(ws, "circle_packing_26", config={"require_isolation": "namespaces"})
    assert status.isolation.startswith("namespaces")
    async with open_workspace(ws.archive.path.with_name("weak.db"), isolate=False) as weak:
        assert (await runs.get_run_status(weak, (await runs.start_run(weak, "circle_packing_26")).run.run_id)
                ).isolation.startswith("none")
        for level in ("namespaces", "bwrap"):
            with pytest.raises(EvoError, match=f"requires isolation '{level}'"):
                await runs.start_run(weak, "circle_packing_26", config={"require_isolation": level})


# Run inside a user namespace whose limit of nested user namespaces is 0: there the kernel refuses
# the children namespaces of their own, as kernels with unprivileged user namespaces turned off do.
REFUSING_KERNEL = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
ATTACK = """
import os, socket
def construct_centers(n):  # the seed's run_packing() calls it
    seen = [os.environ.get("OPENAI_API_KEY")]
    try:
        seen.append(len(open(DB, "rb").read(16)))
    except OSError as exc:
        seen.append(type(exc).__name__)
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
        seen.append("connected")
    except OSError as exc:
        seen.append(type(exc).__name__)
    raise RuntimeError(repr(seen))
"""
PROBE = """
import anyio, json, sys
from evomcp.tools import runs, steps
from evomcp.tools.workspace import open_workspace

async def main(db, attack):
    async with open_workspace(db, slots=1) as ws:
        status = await runs.start_run(ws, "circle_packing_26", config={"require_isolation": "bwrap",
                                                                       "novelty": False})
        seed = await ws.program(status.run.run_id, status.best.id)
        code = seed.code.replace("# EVOLVE-BLOCK-END", attack + "# EVOLVE-BLOCK-END")
        attacked = await steps.propose_candidate(ws, status.run.run_id, seed.id, code=code)
        print(json.dumps({"isolation": status.isolation, "seed_score": seed.combined_score,
                          "error": attacked.program.error}))

anyio.run(main, sys.argv[1], sys.argv[2])
"""


def test_bubblewrap_takes_over_where_the_kernel_refuses_namespaces(tmp_path, monkeypatch):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    if subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine refuses user namespaces to the tests themselves")
    monkeypatch.delenv("EVOMCP_BWRAP", raising=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    db = str(tmp_path / "archive.db")
    attack = ATTACK.replace("DB", repr(db)).replace("PORT", str(listener.getsockname()[1]))
    done = subprocess.run(["unshare", "-U", "-r", "--fork", "sh", "-c", REFUSING_KERNEL, "sh",
                           sys.executable, "-c", PROBE, db, attack],
                          capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": SECRET}, timeout=120)
    listener.settimeout(0.2)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["isolation"].startswith("bwrap"), report
    assert report["seed_score"] > 0
    # no secret, no archive (an empty file, or none at all), and no network: not even loopback
    secret, archive, network = ast.literal_eval(report["error"].removeprefix("RuntimeError: "))
    assert secret is None and archive in (0, "FileNotFoundError", "PermissionError"), report
    assert network in ("OSError", "ConnectionRefusedError"), report  # the sandbox's own loopback at most
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert SECRET not in done.stdout + done.stderr


def test_bubblewrap_required_but_missing_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOMCP_BWRAP", "always")
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    done = subprocess.run([sys.executable, "-m", "evomcp", "run", "circle_packing_26", "--budget", "1",
                           "--db", str(tmp_path / "a.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "apt install bubblewrap" in done.stdout + done.stderr, done.stdout + done.stderr


VENV_PROBE = """
import anyio, json, sys
from evomcp.evaluators.sandbox import ForkServer, run_job

async def main():
    fork = ForkServer(bwrap="always")
    try:
        job = {"kind": "entry", "entry": "run", "code": "import sys\\ndef run():\\n    return sys.prefix\\n",
               "limits": {"timeout_s": 30}}
        outcome = await run_job(fork, job, None)
    finally:
        await fork.aclose()
    print(json.dumps({"prefix": sys.prefix, "isolation": outcome.isolation, "result": outcome.result,
                      "stderr": outcome.stderr_tail}))

anyio.run(main)
"""


def test_bubblewrap_sandbox_sees_a_python_that_lives_under_tmp():
    """The sandbox's /tmp is a fresh one: a virtual environment under /tmp must still run in it."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    import site
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="evomcp-venv-test-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        python = root / "venv" / "bin" / "python"
        packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                       capture_output=True, text=True, check=True).stdout.strip())
        # this environment's packages (evomcp, numpy, anyio) through .pth files, the editable install's too
        ours = [Path(p) for p in site.getsitepackages()]
        (packages / "00-evomcp-test.pth").write_text("\n".join(map(str, ours)) + "\n")
        for pth in (p for folder in ours for p in folder.glob("*.pth")):
            (packages / pth.name).write_text(pth.read_text())
        done = subprocess.run([str(python), "-c", VENV_PROBE], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["prefix"].startswith("/tmp/") and report["isolation"].startswith("bwrap"), report
        assert report["result"] == {"ok": True, "value": report["prefix"], "isolation": "seccomp"}, report
    finally:
        shutil.rmtree(root, ignore_errors=True)
