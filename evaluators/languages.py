"""The languages a program may be written in: how it is marked, fenced, checked, built and run.

Python programs are imported by the sandboxed child, as always. A program in another language is
built inside the same sandbox, as the first phase of the candidate's own job (the compiler is
untrusted work too: hostile input can make it loop or eat memory), under the task's time and
memory limits, with its caches and outputs in the work directory; then the binary runs there and
what it prints on stdout is the data the task scores (a built-in task's trusted scorer, or a split
contract's `score(data)`, as a str). A task folder whose evaluate.py builds and runs the program
itself (ShinkaEvolve's contract, `evaluate(program_path)`) does so unchanged.

Commands are argv lists with placeholders: `{source}` (the program's file, relative to the work
directory), `{binary}` (where the build puts the executable) and `{workdir}`. Their first word is
a tool name that the sandbox's template resolves on its own machine (a rustup proxy to the
toolchain it stands for) and binds read-only into the candidate's view when it lies outside it.
A task folder may give its own (`check`, `build`, `run`, `suffix` in task.toml), which is how a
language not listed here is evolved.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

SOURCE, BINARY = "{source}", "{binary}"


@dataclass(frozen=True)
class Language:
    name: str  # as task.toml's `language` says it (after aliases)
    label: str  # as people write it
    suffix: str  # of the program's file
    fence: str  # the info string of a Markdown code fence
    comment: str  # how a line comment starts: the markers are `<comment> EVOLVE-BLOCK-START`
    lexer: str  # how tools/lexing.py reads it: "python", "c" (C, C++, Java, Go, ...), "rust"
    check: tuple[str, ...] = ()  # a fast syntax (and type) check before evaluation; () none
    build: tuple[str, ...] = ()  # builds {source} into {binary}; () nothing to build
    run: tuple[str, ...] = (BINARY,)
    aliases: tuple[str, ...] = field(default=())


_GCC_QUIET = ("-fdiagnostics-color=never", "-fno-diagnostics-show-caret", "-fmax-errors=20")
LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (
    Language("python", "Python", ".py", "python", "#", "python", run=()),
    Language("c", "C", ".c", "c", "//", "c",
             check=("gcc", "-std=gnu17", "-fsyntax-only", *_GCC_QUIET, SOURCE),
             build=("gcc", "-std=gnu17", "-O2", *_GCC_QUIET, "-o", BINARY, SOURCE, "-lm")),
    Language("cpp", "C++", ".cpp", "cpp", "//", "c",
             check=("g++", "-std=c++17", "-fsyntax-only", *_GCC_QUIET, SOURCE),
             build=("g++", "-std=c++17", "-O2", *_GCC_QUIET, "-o", BINARY, SOURCE),
             aliases=("c++", "cxx", "cc")),
    Language("rust", "Rust", ".rs", "rust", "//", "rust",
             check=("rustc", "--edition=2021", "--color=never", "--crate-type=bin", "--emit=metadata",
                    "-o", "{workdir}/check.rmeta", SOURCE),
             build=("rustc", "--edition=2021", "--color=never", "-C", "opt-level=2", "-o", BINARY, SOURCE),
             aliases=("rs",)),
)}
_ALIASES = {alias: lang.name for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)}
_BY_SUFFIX = {lang.suffix: lang.name for lang in LANGUAGES.values()} | {".cc": "cpp", ".cxx": "cpp", ".c++": "cpp"}
TESTED = ("python", "c", "cpp", "rust")  # what tests/test_languages.py evolves end to end


def normalise(name: str | None) -> str:
    """A language's name as this module spells it ("C++" and "cxx" are "cpp"); unknown names lower-cased."""
    text = (name or "python").strip().lower()
    return _ALIASES.get(text, text)


def by_suffix(suffix: str) -> str | None:
    """The language of a seed file's suffix (".cpp" -> "cpp"), None for one not known here."""
    return _BY_SUFFIX.get(suffix.lower())


def get(name: str) -> Language:
    """The language, or a generic one for a name not listed (C-like comments, commands from task.toml)."""
    name = normalise(name)
    known = LANGUAGES.get(name)
    if known is not None:
        return known
    return Language(name, name, f".{name}", name, "//", "c", run=(BINARY,))


def label(name: str) -> str:
    return get(name).label


def fence(name: str) -> str:
    return get(name).fence


def comment(name: str) -> str:
    return get(name).comment


def is_python(name: str) -> bool:
    return normalise(name) == "python"


def argv_of(value: Any, key: str) -> list[str] | None:
    """A command of task.toml (a string split like a shell line, or a list of words); None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        words = shlex.split(value)
    elif isinstance(value, list) and all(isinstance(w, str) for w in value):
        words = list(value)
    else:
        raise ValueError(f"`{key}` must be a command: a string or a list of strings, for example "
                         f"{key} = [\"g++\", \"-O2\", \"-o\", \"{BINARY}\", \"{SOURCE}\"]")
    return words or None


def commands(name: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task's check, build and run commands and the program's suffix: the language's, overridden by
    task.toml's `check`, `build`, `run` and `suffix` ("" or [] turns a command off)."""
    lang, meta = get(name), meta or {}
    out: dict[str, Any] = {"check": list(lang.check) or None, "build": list(lang.build) or None,
                           "run": list(lang.run) or None, "suffix": lang.suffix}
    for key in ("check", "build", "run"):
        if key in meta:
            out[key] = argv_of(meta[key], key)
    if "suffix" in meta:
        suffix = str(meta["suffix"])
        out["suffix"] = suffix if suffix.startswith(".") else f".{suffix}"
    return out


def build_spec(task: Any) -> dict[str, Any] | None:
    """What the sandboxed child does before it runs a non-Python candidate: the build steps, then the run
    command whose stdout is the program's data. None for a Python task, and for one without commands."""
    if is_python(task.language) or task.job_kind != "entry" or not task.run_cmd:
        return None
    return {"steps": [task.build_cmd] if task.build_cmd else [], "run": task.run_cmd, "binary": "program"}


def check_spec(task: Any) -> dict[str, Any] | None:
    """The job of a compile check (a fast syntax check in the sandbox), or None when the task has none."""
    if is_python(task.language) or not task.check_cmd:
        return None
    return {"steps": [task.check_cmd], "run": None, "binary": "program"}


def describe(task: Any) -> str | None:
    """One line for the brief: the language, how the sandbox builds and runs it, what happens to an error."""
    if is_python(task.language):
        return None
    lang, suffix = get(task.language), task.file_suffix
    parts = [f"the program is {lang.label}"]
    if task.build_cmd and task.job_kind == "entry":
        parts.append(f"built in the sandbox with `{_show(task.build_cmd, suffix)}` (the build counts against the "
                     f"time limit)")
    if task.run_cmd and task.job_kind == "entry":
        parts.append(f"run as `{_show(task.run_cmd, suffix)}`; what it prints on stdout is its result")
    if task.check_cmd:
        parts.append(f"a change that does not pass `{_show(task.check_cmd, suffix)}` is refused with the "
                     f"compiler's first errors (nothing is stored)")
    parts.append(f"markers are `{lang.comment} EVOLVE-BLOCK-START` / `{lang.comment} EVOLVE-BLOCK-END` lines")
    return "; ".join(parts)


def _show(argv: list[str], suffix: str) -> str:
    return " ".join(w.replace(SOURCE, f"program{suffix}").replace(BINARY, "./program").replace("{workdir}/", "")
                    for w in argv)
