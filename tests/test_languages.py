"""Programs in C, C++ and Rust evolve like Python ones: through `evomcp run`, the tools and MCP.

Each language gets a small split-contract task folder (the program prints a number; `score(data)` reads
it in its own sandboxed child) and goes through a seed, a diff, a whole program, a compile error refused
with the compiler's message, a re-commented copy refused as a duplicate; `evomcp run` evolves each
offline (the perturb operator nudging that language's literals), the built-in C++ task and the Rust
example included. The limits hold for compilers and what they build: a compiled binary that outlives
its time limit dies with its children and daemons, and a C++ template recursion without end is stopped
by the time and memory limits with every compiler process it started. A ShinkaEvolve folder whose
evaluate.py compiles and runs a C++ program works unchanged.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from evomcp.evaluators import languages
from evomcp.evaluators.tasks.tsp_berlin52 import BERLIN52, BERLIN52_OPTIMUM, score_tsp_tour, tsplib_length
from evomcp.evaluators.task import BUILTIN_TASKS, resolve_task
from evomcp.server.app import build_server
from evomcp.testing import procs
from evomcp.tools import canonical, lexing, novelty, runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.perturb import offline_limits, perturb

ROOT = Path(__file__).resolve().parents[1]
RUST_EXAMPLE = ROOT / "examples" / "tasks" / "tammes_12_rust"
COMPILERS = {"c": "gcc", "cpp": "g++", "rust": "rustc"}


def needs(language: str):
    tool = COMPILERS[language]
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed here (apt install {tool})")


LANGUAGES = [pytest.param(lang, marks=needs(lang)) for lang in ("c", "cpp", "rust")]

SEEDS = {
    "c": ("initial.c", "#include <stdio.h>\n\n// EVOLVE-BLOCK-START\ndouble value(void) {\n    return 1.5;\n}\n"
                       "// EVOLVE-BLOCK-END\n\nint main(void) {\n    printf(\"%.6f\\n\", value());\n"
                       "    return 0;\n}\n"),
    "cpp": ("initial.cpp", "#include <cstdio>\n\n// EVOLVE-BLOCK-START\ndouble value() {\n    return 1.5;\n}\n"
                           "// EVOLVE-BLOCK-END\n\nint main() {\n    std::printf(\"%.6f\\n\", value());\n"
                           "    return 0;\n}\n"),
    "rust": ("initial.rs", "// EVOLVE-BLOCK-START\nfn value() -> f64 {\n    1.5\n}\n// EVOLVE-BLOCK-END\n\n"
                           "fn main() {\n    println!(\"{:.6}\", value());\n}\n"),
}
# the same change in each language: 1.5 -> 2.5 as a diff; a loop summing to 2.75 as a whole program
DIFFS = {
    "c": "<<<<<<< SEARCH\n    return 1.5;\n=======\n    return 2.5;\n>>>>>>> REPLACE",
    "cpp": "<<<<<<< SEARCH\n    return 1.5;\n=======\n    return 2.5;\n>>>>>>> REPLACE",
    "rust": "<<<<<<< SEARCH\n    1.5\n=======\n    2.5\n>>>>>>> REPLACE",
}
WHOLE = {
    "c": "double value(void) {\n    double s = 0.0;\n    for (int i = 0; i < 11; i++) s += 0.25;\n    return s;\n}\n",
    "cpp": "double value() {\n    double s = 0.0;\n    for (int i = 0; i < 11; i++) s += 0.25;\n    return s;\n}\n",
    "rust": "fn value() -> f64 {\n    let mut s = 0.0_f64;\n    for _ in 0..11 {\n        s += 0.25;\n    }\n"
            "    s\n}\n",
}
BROKEN = {  # a missing semicolon; a type error
    "c": ("    return 1.5;", "    return 1.5"), "cpp": ("    return 1.5;", "    return 1.5"),
    "rust": ("    1.5\n", "    let x: u8 = \"1.5\";\n    x\n"),
}
SCORE_NUMBER = 'ENTRY = "main"\n\n\ndef score(data):\n    return {"combined_score": float(data.strip())}\n'


def number_task(folder: Path, language: str, toml: str = "timeout_s = 30\n", seed: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name, code = SEEDS[language]
    (folder / name).write_text(seed if seed is not None else code)
    (folder / "evaluate.py").write_text(SCORE_NUMBER)
    (folder / "task.toml").write_text(toml)
    return folder


def with_block(code: str, block: str) -> str:
    head, rest = code.split("// EVOLVE-BLOCK-START\n")
    return head + "// EVOLVE-BLOCK-START\n" + block + "// EVOLVE-BLOCK-END\n" + rest.split("// EVOLVE-BLOCK-END\n")[1]


# ---------------------------------------------------------------- the tools, in process


@pytest.mark.parametrize("language", LANGUAGES)
async def test_seed_diff_whole_program_compile_error_and_duplicate(ws, tmp_path, language):
    task = number_task(tmp_path / language, language)
    status = await runs.start_run(ws, str(task), config={"num_islands": 1})
    run_id, seed = status.run.run_id, status.best
    assert seed.correct and seed.combined_score == 1.5, seed
    assert status.scoring == "trusted"  # built and run in the sandbox, scored by score() in a child of its own
    sampled = await steps.sample_parent(ws, run_id)
    fence = languages.fence(language)
    assert f"```{fence}\n" in sampled.brief and f"program in one fenced code block (```{fence}" in sampled.brief
    assert f"language: the program is {languages.label(language)}" in sampled.brief
    assert "is refused with the compiler's first errors" in sampled.brief

    diff = await steps.propose_candidate(ws, run_id, seed.id, patch=DIFFS[language], ticket=sampled.ticket)
    assert diff.program.correct and diff.program.combined_score == 2.5, diff.program
    assert diff.delta_to_parent == pytest.approx(1.0) and diff.is_new_best
    whole = with_block(seed_code := (await ws.program(run_id, seed.id)).code, WHOLE[language])
    full = await steps.propose_candidate(ws, run_id, seed.id, code=whole)
    assert full.program.correct and full.program.combined_score == 2.75, full.program

    before = (await runs.get_run_status(ws, run_id)).counts
    old, new = BROKEN[language]
    started = time.monotonic()
    with pytest.raises(EvoError) as refused:
        await steps.propose_candidate(ws, run_id, seed.id, code=seed_code.replace(old, new))
    message = str(refused.value)
    assert "does not compile" in message and "error" in message, message
    assert f"program{languages.get(language).suffix}:" in message  # the compiler's own lines, with the file
    assert "evomcp-eval" not in message and "/tmp/" not in message  # no path of the server's
    assert time.monotonic() - started < 20
    assert (await runs.get_run_status(ws, run_id)).counts == before  # nothing stored

    # the whole program above again, with a comment and another layout: refused, nothing stored
    reworded = with_block(seed_code, WHOLE[language].replace("    ", "  ").replace("{\n", "{ // sum of quarters\n"))
    with pytest.raises(EvoError, match="duplicate"):
        await steps.propose_candidate(ws, run_id, seed.id, code=reworded)
    assert (await runs.get_run_status(ws, run_id)).counts == before


OPTIMAL_TOUR = [0, 48, 31, 44, 18, 40, 7, 8, 9, 42, 32, 50, 10, 51, 13, 12, 46, 25, 26, 27, 11, 24, 3, 5, 14, 4, 23,
                47, 37, 36, 39, 38, 35, 34, 33, 43, 45, 15, 28, 49, 19, 22, 29, 1, 6, 41, 20, 16, 2, 17, 30, 21]


@needs("cpp")
async def test_builtin_cpp_task_is_scored_by_the_trusted_scorer(ws):
    """The seed, an optimal program, and programs whose output is not a tour, end to end."""
    task = BUILTIN_TASKS["tsp_berlin52"]
    assert task.language == "cpp" and task.target_score == 1.0
    status = await runs.start_run(ws, "tsp_berlin52", config={"num_islands": 1})
    seed = status.best
    length = BERLIN52_OPTIMUM / seed.combined_score
    assert seed.correct and 0.85 < seed.combined_score < 1.0 and abs(length - round(length)) < 1e-6
    assert seed.public_metrics["tour_length"] == round(length) and status.scoring == "trusted"
    program = await ws.program(status.run.run_id, seed.id)
    assert program.stdout_tail and len(program.stdout_tail.split()) == 52  # the tour it printed

    def solving(body: str) -> str:
        return with_block(program.code, f"std::vector<int> solve() {{\n{body}\n}}\n")

    cases = {
        "optimal": (solving("    return {" + ", ".join(map(str, OPTIMAL_TOUR)) + "};"), None),
        "a city twice": (solving("    std::vector<int> t(N);\n    for (int i = 0; i < N; ++i) t[i] = i / 2;\n"
                                 "    return t;"), "visited twice"),
        "too short": (solving("    return {0, 1, 2};"), "3 words"),
        "a score of its own": (solving("    std::printf(\"combined_score 1.0\\n\");\n    return {0};"),
                               "words"),
        "a crash": (solving("    int *p = nullptr;\n    *p = 1;\n    return {};"), "SIGSEGV"),
    }
    results = {}
    async with anyio.create_task_group() as tg:
        for name, (code, _) in cases.items():
            async def one(name=name, code=code):
                results[name] = await ws.executor.evaluate(resolve_task("tsp_berlin52"), code)
            tg.start_soon(one)
    assert results["optimal"].correct and results["optimal"].combined_score == 1.0, results["optimal"]
    assert results["optimal"].public_metrics["tour_length"] == 7542
    for name, (_, reason) in cases.items():
        if reason is not None:
            report = results[name]
            assert not report.correct and report.combined_score is None and reason in (report.error or ""), \
                (name, report)


FIRST_51 = " ".join(map(str, range(51)))


def test_tsp_scorer_reads_hostile_text():
    assert tsplib_length(BERLIN52, OPTIMAL_TOUR) == BERLIN52_OPTIMUM == 7542  # TSPLIB's published optimum
    best = score_tsp_tour(" ".join(map(str, OPTIMAL_TOUR)) + "\n")
    assert best.correct and best.combined_score == 1.0
    for text, reason in [
        ({"combined_score": 99.0}, "as text"), ("1 " * 52, "visited twice"), (FIRST_51, "51 words"),
        (FIRST_51 + " 52", "does not exist"), (FIRST_51 + " -1", "not a city"), (FIRST_51 + " 5e1", "not a city"),
        (FIRST_51 + " \uff15", "not a city"),
        ("0 " * 40000, "characters"), ("", "0 words"),
    ]:
        verdict = score_tsp_tour(text)
        assert not verdict.correct and verdict.combined_score is None and reason in verdict.error, (text, verdict)


# ---------------------------------------------------------------- reading other languages


def test_tokens_drop_comments_and_read_numbers_by_value():
    c = 'int x = 0x10u; /* 9.5 */ double y = 1.f + .5 + 1e-3; // 7.25\nconst char *s = "2.5"; char c = \'3\';'
    assert lexing.tokens(c, "cpp") == ["int", "x", "=", "16u", ";", "double", "y", "=", "1.0f", "+", "0.5", "+",
                                       "0.001", ";", "const", "char", "*", "s", "=", '"2.5"', ";", "char", "c", "=",
                                       "'3'", ";"]
    assert [lit.text for lit in lexing.literals(c, "cpp")] == ["0x10u", "1.f", ".5", "1e-3"]
    rust = "let a = 1_000_u32; /* outer /* 9.0 */ 8.0 */ let b = 2.5_f64 * t.0; let s = r#\"4.5\"#; for i in 0..n {}"
    assert [lit.text for lit in lexing.literals(rust, "rust")] == ["1_000_u32", "2.5_f64", "0"]  # t.0 is a field
    assert "1000u32" in lexing.tokens(rust, "rust") and "8.0" not in lexing.tokens(rust, "rust")
    rng = np.random.default_rng(3)
    for text, shape in [("1.0f", r"\d+\.\d+(e-?\d+)?f"), ("2.5_f64", r"\d+\.\d+(e-?\d+)?_f64"), ("10u", r"(9|11)u"),
                        ("0x1F", r"0x(1E|20)"), ("1e-3", r"\d+\.\d+(e-?\d+)?"), ("0.0", r"\d+\.\d+(e-?\d+)?")]:
        nudged = {lexing.nudged(text, rng, (0.02,)) for _ in range(40)} - {None}
        assert nudged and all(re.fullmatch(shape, n) for n in nudged), (text, nudged)


@pytest.mark.parametrize("language", ["cpp", "rust"])
def test_hostile_code_is_read_in_linear_time(language):
    """The server reads every proposal (novelty, perturb): runs that would make a backtracking lexer quadratic
    (each 100,000 characters; before the lexer was made linear the first took minutes) take well under a second."""
    for code in ["1" * 100_000 + "x", "1.0" + "_" * 100_000 + "x", '"\\' * 50_000, "'\\" * 50_000,
                 'R"(' * 33_000, 'r#"' * 33_000, "/*" * 50_000, "1e-" * 33_000, "1." * 50_000]:
        started = time.process_time()
        lexing.tokens(code, language)
        lexing.literals(code, language)
        canonical.fingerprint(f"// EVOLVE-BLOCK-START\n{code}\n// EVOLVE-BLOCK-END\n", language)
        assert time.process_time() - started < 1.0, code[:12]


@pytest.mark.parametrize("language", ["c", "cpp", "rust"])
def test_fingerprint_and_embedding_ignore_comments_and_layout(language):
    code = SEEDS[language][1]
    block = WHOLE[language]
    one = with_block(code, block)
    reworded = with_block(code, "// a new comment\n" + block.replace("    ", "\t").replace("0.25", "0.250"))
    other = with_block(code, block.replace("0.25", "0.26"))
    assert canonical.fingerprint(one, language) == canonical.fingerprint(reworded, language)
    assert canonical.fingerprint(one, language) != canonical.fingerprint(other, language)
    assert np.allclose(novelty.embed(one, language=language), novelty.embed(reworded, language=language))
    changed = perturb(one, np.random.default_rng(0), language=language)
    assert changed is not None and "0.25 -> " in changed[1] and offline_limits(one, language) is None
    assert changed[0].split("// EVOLVE-BLOCK-END")[1] == one.split("// EVOLVE-BLOCK-END")[1]  # fixed code kept


def test_python_stays_as_it_was():
    code = "# EVOLVE-BLOCK-START\ndef f(x):\n    y = x * 2  # double\n    return y\n# EVOLVE-BLOCK-END\n"
    assert canonical.fingerprint(code) == canonical.fingerprint(code, "python")
    assert canonical.fingerprint(code) == canonical.fingerprint(code.replace("y", "z").replace("  # double", ""))
    task = resolve_task("circle_packing_26")
    assert task.language == "python" and task.file_suffix == ".py" and task.build_cmd is None
    assert languages.build_spec(task) is None and languages.check_spec(task) is None


def test_task_folders_declare_or_imply_their_language(tmp_path):
    folder = number_task(tmp_path / "implied", "cpp", toml="")
    task = resolve_task(str(folder))
    assert task.language == "cpp" and task.kind == "split" and task.file_suffix == ".cpp"
    assert task.build_cmd[0] == "g++" and task.check_cmd[0] == "g++"
    (folder / "task.toml").write_text('language = "C++"\nbuild = "clang++ -O3 -o {binary} {source}"\ncheck = ""\n')
    task = resolve_task(str(folder))
    assert task.language == "cpp" and task.build_cmd == ["clang++", "-O3", "-o", "{binary}", "{source}"]
    assert task.check_cmd is None
    (folder / "task.toml").write_text("build = 3\n")
    with pytest.raises(ValueError, match="must be a command"):
        resolve_task(str(folder))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "initial.rs").write_text("fn main() {}\n")
    (bare / "evaluate.py").write_text(SCORE_NUMBER)
    with pytest.raises(ValueError, match="'// EVOLVE-BLOCK-START'"):
        resolve_task(str(bare))


async def test_a_language_given_by_its_commands_alone(ws, tmp_path):
    """No code for it here: a shell script, checked by `sh -n` and run by `sh`, with `#` markers."""
    folder = tmp_path / "shell"
    folder.mkdir()
    (folder / "initial.sh").write_text("# EVOLVE-BLOCK-START\nvalue=1.5\n# EVOLVE-BLOCK-END\necho \"$value\"\n")
    (folder / "evaluate.py").write_text(SCORE_NUMBER)
    (folder / "task.toml").write_text('language = "sh"\ncheck = "sh -n {source}"\nrun = ["sh", "{source}"]\n')
    task = resolve_task(str(folder))
    assert task.file_suffix == ".sh" and task.build_cmd is None and task.run_cmd == ["sh", "{source}"]
    status = await runs.start_run(ws, str(folder), config={"num_islands": 1})
    assert status.best.combined_score == 1.5 and status.scoring == "trusted"
    seed = status.best
    diff = await steps.propose_candidate(ws, status.run.run_id, seed.id,
                                         patch="<<<<<<< SEARCH\nvalue=1.5\n=======\nvalue=2.5\n>>>>>>> REPLACE")
    assert diff.program.combined_score == 2.5
    with pytest.raises(EvoError, match="does not compile: sh exited with code"):
        await steps.propose_candidate(ws, status.run.run_id, seed.id,
                                      patch="<<<<<<< SEARCH\nvalue=1.5\n=======\nif then fi\n>>>>>>> REPLACE")
    changed = perturb((await ws.program(status.run.run_id, seed.id)).code, np.random.default_rng(0), language="sh")
    assert changed is not None and "1.5 -> " in changed[1]


# ---------------------------------------------------------------- the limits hold for compilers and binaries


async def _left_behind(ws) -> set[int]:
    """Processes of this test's process tree but the sandbox's helpers and its prepared spare children (which
    hold no candidate yet), still alive 3 s after an evaluation: a compiler or a binary that survived."""
    return await procs.leftovers(lambda: ws.executor.helper_pids, 3.0, skip_names=("evomcp-spare",))


HANGING_C = """#include <stdio.h>

// EVOLVE-BLOCK-START
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

double value(void) {
    // children and a daemon in a session of its own, all looping; then the program itself loops
    for (int i = 0; i < 3; i++) {
        if (fork() == 0) {
            if (i == 2 && fork() == 0) {
                setsid();
                signal(SIGHUP, SIG_IGN);
            }
            prctl(PR_SET_NAME, "@MARK@", 0, 0, 0);
            for (;;) {}
        }
    }
    prctl(PR_SET_NAME, "@MARK@", 0, 0, 0);
    for (;;) {}
    return 1.5;
}
// EVOLVE-BLOCK-END

int main(void) {
    printf("%.6f\\n", value());
    return 0;
}
"""


@needs("c")
async def test_timeout_kills_a_compiled_binary_with_its_children(ws, tmp_path):
    mark = "evolang" + secrets.token_hex(4)
    task = number_task(tmp_path / "hang", "c", toml="timeout_s = 5\n")
    status = await runs.start_run(ws, str(task), config={"num_islands": 1})
    seed = status.best
    started = time.monotonic()
    running = await steps.propose_candidate(ws, status.run.run_id, seed.id, code=HANGING_C.replace("@MARK@", mark),
                                            wait_s=0)
    with anyio.move_on_after(10):
        while len(procs.named(mark)) < 5:  # the program, its three children and the daemon
            await anyio.sleep(0.05)
    assert len(procs.named(mark)) == 5, "the binary did not start its processes: the test would prove nothing"
    result = await steps.evaluate(ws, status.run.run_id, running.program.id)
    assert result.program.status == "failed" and "timeout" in (result.program.error or ""), result.program
    assert time.monotonic() - started < 25
    with anyio.move_on_after(3):
        while procs.named(mark):
            await anyio.sleep(0.05)
    assert not procs.named(mark), "processes of the binary outlived its evaluation"
    left = await _left_behind(ws)
    assert not left, f"processes outlived the evaluation: {procs.describe(*sorted(left))}"
    honest = await steps.propose_candidate(ws, status.run.run_id, seed.id, patch=DIFFS["c"])
    assert honest.program.correct and honest.program.combined_score == 2.5


# Instantiates 2^40 distinct class templates (two parameters, so none is shared): the compiler's input
# never ends, however the compiler memoises.
TEMPLATE_BOMB = """#include <cstdio>

// EVOLVE-BLOCK-START
template <int N, long K> struct Tree {
    static const long v = Tree<N - 1, 2 * K>::v + Tree<N - 1, 2 * K + 1>::v;
};
template <long K> struct Tree<0, K> {
    static const long v = 1;
};
double value() {
    return (double)Tree<40, 0>::v;
}
// EVOLVE-BLOCK-END

int main() {
    std::printf("%.6f\\n", value());
    return 0;
}
"""


@needs("cpp")
async def test_template_recursion_is_stopped_by_the_limits(ws, tmp_path):
    """Both where the compiler meets it: the compile check of a proposal, and the build of a seed."""
    task = number_task(tmp_path / "bomb", "cpp", toml="timeout_s = 3\nmemory_mb = 600\n")
    status = await runs.start_run(ws, str(task), config={"num_islands": 1})
    run_id, seed = status.run.run_id, status.best
    started = time.monotonic()
    with pytest.raises(EvoError) as refused:
        await steps.propose_candidate(ws, run_id, seed.id, code=TEMPLATE_BOMB)
    message = str(refused.value)
    assert ("ran past the task's time limit of 3 s" in message or "does not compile" in message), message
    assert time.monotonic() - started < 20
    left = await _left_behind(ws)  # cc1plus and g++ among them, had they survived
    assert not left, f"processes outlived the compile check: {procs.describe(*sorted(left))}"

    (task / "initial.cpp").write_text(TEMPLATE_BOMB)  # the build phase of an evaluation: the seed's
    started = time.monotonic()
    with pytest.raises(EvoError, match="timeout|does not compile"):
        await runs.start_run(ws, str(task), config={"num_islands": 1})
    assert time.monotonic() - started < 20
    left = await _left_behind(ws)
    assert not left, f"processes outlived the build: {procs.describe(*sorted(left))}"
    honest = await steps.propose_candidate(ws, run_id, seed.id, patch=DIFFS["cpp"])
    assert honest.program.correct and honest.program.combined_score == 2.5


# ---------------------------------------------------------------- a ShinkaEvolve folder, unchanged


SHINKA_EVALUATE = '''"""A ShinkaEvolve-style evaluator: compiles the C++ program itself, runs it, writes its results."""
import argparse
import json
import os
import subprocess

parser = argparse.ArgumentParser()
parser.add_argument("--program_path")
parser.add_argument("--results_dir")
args = parser.parse_args()
binary = os.path.join(args.results_dir, "program")
build = subprocess.run(["g++", "-O1", "-o", binary, args.program_path], capture_output=True, text=True)
correct = {"correct": build.returncode == 0, "error": build.stderr[-2000:] or None}
metrics = {"combined_score": 0.0}
if build.returncode == 0:
    value = float(subprocess.run([binary], capture_output=True, text=True, timeout=20).stdout)
    metrics = {"combined_score": value, "public": {"printed": value}}
with open(os.path.join(args.results_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f)
with open(os.path.join(args.results_dir, "correct.json"), "w") as f:
    json.dump(correct, f)
'''


@needs("cpp")
async def test_shinka_folder_compiling_cpp_in_its_evaluate_py(ws, tmp_path):
    folder = tmp_path / "shinka_cpp"
    folder.mkdir()
    (folder / "initial.cpp").write_text(SEEDS["cpp"][1])
    (folder / "evaluate.py").write_text(SHINKA_EVALUATE)
    task = resolve_task(str(folder))
    assert task.kind == "script" and task.language == "cpp" and languages.build_spec(task) is None
    status = await runs.start_run(ws, str(folder), config={"num_islands": 1})
    assert status.best.correct and status.best.combined_score == 1.5
    assert status.scoring == "in_candidate"  # its own evaluate.py scores, in the candidate's process
    diff = await steps.propose_candidate(ws, status.run.run_id, status.best.id, patch=DIFFS["cpp"])
    assert diff.program.correct and diff.program.combined_score == 2.5
    with pytest.raises(EvoError, match="does not compile"):  # the compile check applies to it too
        await steps.propose_candidate(ws, status.run.run_id, status.best.id,
                                      code=SEEDS["cpp"][1].replace("return 1.5;", "return 1.5"))


# ---------------------------------------------------------------- over MCP, in memory


@pytest.mark.parametrize("language", LANGUAGES)
async def test_over_mcp(ws, tmp_path, language):
    task = number_task(tmp_path / language, language)
    async with Client(build_server(ws)) as client:
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
        assert {t["name"]: t["language"] for t in listed}["tsp_berlin52"] == "cpp"
        result = await client.call_tool("start_run", {"task": str(task), "config": {"num_islands": 1}})
        assert not result.is_error, result.content[0].text
        status = result.structured_content
        run_id, seed = status["run"]["run_id"], status["best"]
        assert seed["combined_score"] == 1.5
        sampled = (await client.call_tool("sample_parent", {"run_id": run_id})).structured_content
        assert f"```{languages.fence(language)}\n" in sampled["brief"] and sampled["language"] == language
        proposed = await client.call_tool("propose_candidate", {
            "run_id": run_id, "parent_id": seed["id"], "patch": DIFFS[language], "ticket": sampled["ticket"]})
        assert not proposed.is_error and proposed.structured_content["program"]["combined_score"] == 2.5
        code = (await client.call_tool("get_program", {"run_id": run_id, "program_id": seed["id"]})
                ).structured_content["code"]
        whole = await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": seed["id"],
                                                             "code": with_block(code, WHOLE[language])})
        assert not whole.is_error and whole.structured_content["program"]["combined_score"] == 2.75
        old, new = BROKEN[language]
        broken = await client.call_tool("propose_candidate", {"run_id": run_id, "parent_id": seed["id"],
                                                              "code": code.replace(old, new)})
        assert broken.is_error and "does not compile" in broken.content[0].text


# ---------------------------------------------------------------- `evomcp run`, offline


def _evomcp_run(task: str, db: Path, budget: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "evomcp", "run", task, "--budget", str(budget), "--seed", "1",
                          "--db", str(db)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"evaluation budget of {budget} reached" in out.stderr, out.stderr[-3000:]
    shown = subprocess.run([sys.executable, "-m", "evomcp", "show", "1", "--db", str(db)], capture_output=True,
                           text=True, timeout=120)
    return json.loads(shown.stdout)


@pytest.mark.parametrize("language", [pytest.param("c", marks=needs("c")), pytest.param("rust", marks=needs("rust")),
                                      pytest.param("cpp", marks=needs("cpp"))])
def test_evomcp_run_evolves_offline(tmp_path, language):
    """perturb nudges the language's literals; the built-in C++ task and the Rust example folder run as shipped."""
    task = {"c": None, "rust": str(RUST_EXAMPLE), "cpp": "tsp_berlin52"}[language]
    if task is None:
        seed = SEEDS["c"][1].replace("return 1.5;", "return 1.5 * 0.75 + 0.375;")
        task = str(number_task(tmp_path / "c", "c", seed=seed))
    status = _evomcp_run(task, tmp_path / "run.db", budget=3)
    assert status["run"]["status"] == "finished" and status["candidates_evaluated"] == 3
    assert status["driver"]["arms"]["perturb"]["pulls"] >= 3 and status["scoring"] == "trusted"
    assert status["counts"].get("failed", 0) == 0  # every nudge of the language's literals built and ran
    seed = {"c": 1.5, "rust": 0.8757418448092944, "cpp": BERLIN52_OPTIMUM / 8189}[language]
    assert status["best"]["combined_score"] >= seed


@pytest.mark.parametrize("language", ["cpp", "rust"])
def test_every_character_is_in_exactly_one_lexeme(language):
    """The scanner moves on at every step (an empty lexeme would hold it forever, as Python 3.11 before 3.11.5
    produced for a possessive repeat): its lexemes tile the code, whatever the code."""
    for code in [SEEDS[language][1], "int n = 2;\nx = 12.5f + .5e-3 + 0x1F;", "1" * 500 + "x", "'a' \"b\" r#\"c\"#"]:
        spans = [(start, end) for _, start, end in lexing._scan(code, lexing.lexer_of(language))]
        assert spans[0][0] == 0 and spans[-1][1] == len(code)
        assert all(end > start for start, end in spans)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert "2" in lexing.tokens("int n = 2;", language)
