"""Whether a run's scores were computed outside the candidate's process (trusted) or inside it.

Built-in tasks and split-contract task directories score the data a candidate returned in a process
that never runs candidate code. `evaluate(program_path)` and script task directories compute the
score inside the candidate's own sandboxed process, where the candidate can forge it. The contracts
that scored a run are kept in its note "scoring": start_run writes it, and the first evaluation of a
run in each server process adds the contract it evaluates with, if that differs (a task directory's
evaluate.py edited between two server lives makes the run "mixed").
"""

from __future__ import annotations

from typing import Any, Literal

from ..evaluators.task import BUILTIN_TASKS, TRUSTED_KINDS, Task
from ..store import Archive, RunRecord

NOTE = "scoring"
# A task-directory run started before contracts were recorded: evaluate(program_path) or a script,
# the only task-directory contracts there were, both in the candidate's process.
UNRECORDED_TASK_DIR = "task_dir"

Scoring = Literal["trusted", "in_candidate", "mixed"]

SCORING_HELP = ("'trusted': every score was computed outside the candidate's process (a built-in task's "
                "trusted scorer, or a task directory's score(data) under the split contract); 'in_candidate': "
                "scores were computed in the candidate's own process (evaluate(program_path) or a script "
                "evaluate.py), so a candidate can forge its own score; 'mixed': some of each (the task's "
                "evaluate.py changed during the run)")

_CONTRACTS = {
    "builtin": "built-in task: the trusted scorer process checks the data the candidate returned and scores it",
    "split": "split contract: the task's score(data) runs in a separate sandboxed process that never loads "
             "the candidate's code",
    "evaluate_fn": "evaluate(program_path) runs in the candidate's own sandboxed process",
    "script": "evaluate.py runs as a script in the candidate's own sandboxed process",
    UNRECORDED_TASK_DIR: "the task directory's evaluate.py ran in the candidate's own sandboxed process",
}


def contracts_of(run: RunRecord, note: Any) -> list[str]:
    """The contracts that scored `run`, from its note (or, for a run that has none, from its task)."""
    if isinstance(note, dict) and isinstance(note.get("contracts"), list) and note["contracts"]:
        return [str(c) for c in note["contracts"]]
    return ["builtin"] if run.task_path in BUILTIN_TASKS else [UNRECORDED_TASK_DIR]


def scoring(contracts: list[str]) -> Scoring:
    trusted = [c in TRUSTED_KINDS for c in contracts]
    return "trusted" if all(trusted) else "in_candidate" if not any(trusted) else "mixed"


def describe(contracts: list[str]) -> str:
    """One sentence for people: how the run's scores were computed and whether a candidate can forge them."""
    head = {
        "trusted": "trusted: computed outside the candidate's process",
        "in_candidate": "computed in the candidate's process: a candidate can forge its own score",
        "mixed": "mixed: some scores were computed in the candidate's process, where a candidate can forge its "
                 "own score",
    }[scoring(contracts)]
    return f"{head} ({'; '.join(_CONTRACTS.get(c, c) for c in contracts)})"


async def run_contracts(archive: Archive, run: RunRecord) -> list[str]:
    return contracts_of(run, await archive.get_note(run.id, NOTE))


async def all_contracts(archive: Archive, runs: list[RunRecord]) -> dict[int, list[str]]:
    """The contracts of every run in `runs`, in one query."""
    notes = await archive.notes_of_runs(NOTE)
    return {run.id: contracts_of(run, notes.get(run.id)) for run in runs}


async def start_contract(archive: Archive, run_id: int, task: Task) -> None:
    """What start_run records: the contract the new run is scored with."""
    await archive.set_note(run_id, NOTE, {"contracts": [task.kind]})


async def record_contract(archive: Archive, recorded: set[int], run: RunRecord, task: Task) -> None:
    """Before this process first evaluates `run`: add `task`'s contract to the run's note if it is new.

    `recorded` holds the runs this process has checked already, so this is one read per run and process.
    """
    if run.id in recorded:
        return
    recorded.add(run.id)
    contracts = await run_contracts(archive, run)
    if task.kind not in contracts:
        await archive.set_note(run.id, NOTE, {"contracts": [*contracts, task.kind]})
