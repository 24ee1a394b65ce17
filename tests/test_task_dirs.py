"""Malformed task directories give a clear error at start_run, quickly, never a hung run."""

import time

import pytest

from evomcp.tools import runs
from evomcp.tools.errors import EvoError

SEED = "# EVOLVE-BLOCK-START\ndef value():\n    return 1.0\n# EVOLVE-BLOCK-END\n"

CASES = {
    "no markers": ("def value():\n    return 1.0\n", "def evaluate(p):\n    return {'combined_score': 1.0}\n",
                   "no EVOLVE-BLOCK"),
    "evaluate.py raises on import": (SEED, "raise ImportError('broken evaluator')\n", "broken evaluator"),
    "evaluate returns a list": (SEED, "def evaluate(p):\n    return [1, 2]\n", "expected a dict"),
    "evaluate returns no score": (SEED, "def evaluate(p):\n    return {'accuracy': 1}\n", "combined_score"),
    "evaluate never returns": (SEED, "import time\ndef evaluate(p):\n    while True:\n        time.sleep(1)\n",
                               "timeout"),
    "evaluate.py does not parse": (SEED, "def evaluate(p)\n    return {}\n", "does not parse"),
    "seed does not parse": ("# EVOLVE-BLOCK-START\ndef value(:\n# EVOLVE-BLOCK-END\n",
                            "def evaluate(p):\n    return {'combined_score': 1.0}\n", "syntax error"),
    "no evaluate.py": (SEED, None, "no evaluate.py"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_task_directory(ws, tmp_path, case):
    initial, evaluate, needle = CASES[case]
    task = tmp_path / "task"
    task.mkdir()
    (task / "initial.py").write_text(initial)
    if evaluate is not None:
        (task / "evaluate.py").write_text(evaluate)
    (task / "task.toml").write_text("timeout_s = 2\n")
    started = time.monotonic()
    with pytest.raises(EvoError, match=needle):
        await runs.start_run(ws, str(task))
    assert time.monotonic() - started < 10
    assert await ws.archive.integrity_check() == "ok"


async def test_missing_directory_and_bad_toml(ws, tmp_path):
    with pytest.raises(EvoError, match="neither a built-in task nor a directory"):
        await runs.start_run(ws, str(tmp_path / "nowhere"))
    (tmp_path / "initial.py").write_text(SEED)
    (tmp_path / "evaluate.py").write_text("def evaluate(p):\n    return {'combined_score': 1.0}\n")
    (tmp_path / "task.toml").write_text("timeout_s = = 2\n")
    with pytest.raises(EvoError, match="not valid TOML"):
        await runs.start_run(ws, str(tmp_path))


async def test_task_directory_with_a_link_out_of_it_is_refused(ws, tmp_path):
    """Candidates get a copy of the folder; a link leading out of it (here to a secret) is refused by
    name at start_run, and a link inside the folder is fine."""
    secret = tmp_path / "secret.txt"
    secret.write_text("canary-not-for-candidates")
    task = tmp_path / "task"
    task.mkdir()
    (task / "initial.py").write_text(SEED)
    (task / "evaluate.py").write_text("def evaluate(p):\n    return {'combined_score': 1.0}\n")
    (task / "data.txt").write_text("inside")
    (task / "alias.txt").symlink_to("data.txt")
    (task / "leak.txt").symlink_to(secret)
    with pytest.raises(EvoError, match=r"links that lead out of it \(leak.txt -> .*secret.txt\)"):
        await runs.start_run(ws, str(task))
    (task / "leak.txt").unlink()
    status = await runs.start_run(ws, str(task), config={"novelty": False})
    assert status.best.combined_score == 1.0
