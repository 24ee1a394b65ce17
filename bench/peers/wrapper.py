"""The measuring wrapper of bench/compare_peers.py: a child subreaper that runs the framework, reaps every
descendant (orphans included) and reports the CPU time of the whole tree and the largest peak RSS of one process in it.

    python wrapper.py REPORT.json LOG COMMAND...
"""

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
out, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]


def children():
    found = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found


started = time.monotonic()
with open(log, "wb") as f:
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    rc = proc.wait()
wall = time.monotonic() - started
orphans, deadline = 0, time.monotonic() + 15
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid:
        orphans += 1
        continue
    if time.monotonic() > deadline:
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.05)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"rc": rc, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime, "sys": ru.ru_stime,
               "maxrss_mb": ru.ru_maxrss / 1024, "orphans": orphans}, f)
