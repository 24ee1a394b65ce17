"""Novelty: refuse a program already tried in other clothes; let every change of behaviour through.

The policy (`check`): a candidate is refused when a program of the run, on any island and whatever
its status, has the same canonical form (tools/canonical.py: the same program up to formatting,
comments, docstrings, names of locals and the spelling of numbers). Another constant, another move
or a fix changes the canonical form, so it passes however small it is. The refusal names the twin
and says what would pass; `novelty_override` with a reason stores the candidate all the same and
records the reason as an event. Runs with a `novelty_judge` also ask that model about a candidate
whose embedding is closer than `novelty_threshold` to a correct program of its island; the judge
may refuse it (overridable in the same way). Similarity alone refuses nothing: a whole-program
embedding makes every focused edit of a large program look the same.

The default embedder needs no model and no network: signed feature hashing of token
1- to 3-grams into a float32 vector, L2-normalised (stable across processes: crc32,
not Python's salted hash). Each island's most recent embeddings (a window of
20,000 by default) are one float32 matrix, so a nearest-program lookup is
one matrix-vector product of bounded cost however large the run grows.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import lexing, markers
from .errors import EvoError
from .models import NoveltyCheck, RunConfig
from .providers import ProviderError

if TYPE_CHECKING:
    from ..store import ProgramRecord
    from .workspace import Workspace

DIM = 256
WINDOW = 20_000
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|[^\s\w]")


def embed(code: str, dim: int = DIM, language: str = "python") -> np.ndarray:
    """Hashed token n-gram embedding of the EVOLVE-BLOCK regions of `code` (another language's tokens without
    its comments, tools/lexing.py)."""
    try:
        text = markers.mutable_code(code)
    except Exception:  # noqa: BLE001 - no markers: embed everything
        text = code
    tokens = _TOKEN.findall(text) if language == "python" else lexing.tokens(text, language)
    vector = np.zeros(dim, dtype=np.float32)
    for n in (1, 2, 3):
        for i in range(len(tokens) - n + 1):
            h = zlib.crc32(" ".join(tokens[i : i + n]).encode())
            vector[h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass
class _Island:
    """A ring buffer of the island's newest `window` embeddings."""

    window: int = WINDOW
    ids: list[int] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), dtype=np.float32))
    added: int = 0

    def add(self, program_id: int, vector: np.ndarray) -> None:
        filled = min(self.added, self.window)
        if self.added == 0 and self.matrix.shape[1] != vector.shape[0]:  # an endpoint's own dimension
            self.matrix = np.zeros((0, vector.shape[0]), dtype=np.float32)
        if filled == len(self.matrix) and filled < self.window:  # grow by doubling up to the window
            grown = np.zeros((min(self.window, max(16, 2 * len(self.matrix))), vector.shape[0]), dtype=np.float32)
            grown[:filled] = self.matrix[:filled]
            self.matrix = grown
        slot = self.added % self.window
        self.matrix[slot] = vector
        if slot < len(self.ids):
            self.ids[slot] = program_id
        else:
            self.ids.append(program_id)
        self.added += 1

    def nearest(self, vector: np.ndarray) -> tuple[int | None, float]:
        filled = min(self.added, self.window)
        if filled == 0 or vector.shape[0] != self.matrix.shape[1]:
            return None, 0.0
        sims = self.matrix[:filled] @ vector
        i = int(np.argmax(sims))
        return self.ids[i], float(sims[i])


class EmbeddingIndex:
    """A run's per-island embedding matrices (tools/run_state.py holds one and keeps it in step)."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._islands: dict[int, _Island] = {}

    def load(self, rows: list[tuple[int, int, bytes]]) -> None:
        """Rows of (id, island, embedding), oldest first."""
        for program_id, island, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32)
            target = self._islands.setdefault(island, _Island(self.window))
            if target.added and vector.shape[0] != target.matrix.shape[1]:
                continue  # another embedder's dimension: not comparable
            target.add(program_id, vector)

    def add(self, island: int, program_id: int, vector: np.ndarray) -> None:
        self._islands.setdefault(island, _Island(self.window)).add(program_id, vector)

    def nearest(self, island: int, vector: np.ndarray) -> tuple[int | None, float]:
        return self._islands.get(island, _Island()).nearest(vector)


WOULD_PASS = ("What would pass: a change of what the program does (another constant, another move, a fix), "
              "however small")
OVERRIDE_HINT = ("If it does differ in a way this check cannot see, propose it again with "
                 "novelty_override=\"<why>\" (recorded in the run's events)")


def _twin_state(twin: ProgramRecord, run_id: int) -> str:
    if twin.status == "failed" or (twin.status == "evaluated" and not twin.correct):
        return (f"; program {twin.id} {'failed' if twin.status == 'failed' else 'was judged incorrect'}: "
                f"{(twin.error or 'invalid result').strip()[:200]}. To run it again as it is (say the failure "
                f"was a timeout under load), call evaluate(run_id={run_id}, program_id={twin.id})")
    if twin.status == "pending":
        return f"; it has not been evaluated yet: call evaluate(run_id={run_id}, program_id={twin.id})"
    if twin.status == "evaluated":
        score = "none" if twin.combined_score is None else repr(float(twin.combined_score))
        return f"; it scored {score}"
    return "; it is being evaluated now"


async def exact_duplicate(ws: Workspace, run_id: int, twin_id: int) -> str:
    """Why a program with exactly the code of program `twin_id` is refused, and what to do instead."""
    twin = await ws.archive.get_program(run_id, twin_id)
    state = _twin_state(twin, run_id) if twin is not None else ""
    return (f"this program is an exact duplicate of program {twin_id}{state}. Nothing was stored (a run holds "
            f"each program once, so novelty_override does not apply). {WOULD_PASS}")


async def check(ws: Workspace, run_id: int, config: RunConfig, parent: ProgramRecord, island: int, code: str,
                fingerprint: str | None, vector: np.ndarray | None, operator: str | None = None,
                override: str | None = None) -> NoveltyCheck:
    """Refuse (EvoError) a candidate of `island` the run has already tried, or one its judge finds not different
    from the island's nearest. `fingerprint` is None only when the run's novelty is off, `vector` only when it has
    no judge."""
    if not config.novelty:
        return NoveltyCheck(checked=False, note="novelty checks are off for this run")
    if operator is not None and operator in config.novelty_exempt:
        return NoveltyCheck(checked=False, note=f"operator {operator!r} is exempt (run config novelty_exempt)")
    override = (override or "").strip()[:1000] or None
    assert fingerprint is not None
    twin_id = await ws.archive.find_by_fingerprint(run_id, fingerprint)
    if twin_id is not None:
        twin = await ws.program(run_id, twin_id)
        which = "its parent" if twin_id == parent.id else f"program {twin_id} (island {twin.island})"
        if override:
            await ws.archive.add_event(run_id, "novelty_overridden", {"same_as": twin_id, "reason": override})
            return NoveltyCheck(checked=True, same_as=twin_id, override=override,
                                note=f"the same program as {which} after normalising; stored on your override")
        await ws.archive.add_event(run_id, "novelty_rejected", {"same_as": twin_id, "island": island,
                                                                "reason": "same canonical form"})
        raise EvoError(
            f"this program is a duplicate of {which} up to formatting, comments, docstrings, names of locals "
            f"and the spelling of numbers: after normalising, the two are one program, so evaluating it would "
            f"tell nothing new{_twin_state(twin, run_id)}. Nothing was stored. {WOULD_PASS}. "
            f"{OVERRIDE_HINT}")
    result = NoveltyCheck(checked=True, note="no program of the run is the same after normalising")
    if config.novelty_judge is not None and vector is not None:
        result = await _judge(ws, run_id, config, island, code, vector, override, result)
    return result


JUDGE_PROMPT = """Two versions of the mutable part of a program are below. Is CANDIDATE meaningfully different
from EXISTING in its approach or algorithm (not merely renamed, reformatted, re-commented or with
constants nudged)? Answer YES or NO on the first line, then one sentence why.

EXISTING:
```
{nearest}
```

CANDIDATE:
```
{candidate}
```"""


async def _ask_judge(ws: Workspace, run_id: int, spec: dict, candidate: str, nearest: str) -> tuple[bool, str]:
    """Whether the judge finds `candidate` meaningfully different from `nearest` (its first line says YES), and
    why."""
    text = await ws.providers.complete(run_id, spec, "novelty_judge", "You judge code novelty tersely.",
                                       JUDGE_PROMPT.format(candidate=candidate[:12000], nearest=nearest[:12000]))
    first = text.strip().split("\n", 1)[0].strip().upper()
    return first.startswith("YES"), text.strip()[:500]


async def _judge(ws: Workspace, run_id: int, config: RunConfig, island: int, code: str,
                 vector: np.ndarray, override: str | None, result: NoveltyCheck) -> NoveltyCheck:
    nearest, similarity = await (await ws.state(run_id)).nearest(island, vector)
    result.nearest_id, result.similarity = nearest, similarity
    if nearest is None or similarity <= config.novelty_threshold:
        return result
    twin = await ws.program(run_id, nearest)
    if twin.status != "evaluated" or not twin.correct:
        result.note = f"closest to program {nearest}, which has no valid score: the judge was not asked"
        return result
    try:
        novel, verdict = await _ask_judge(ws, run_id, config.novelty_judge, markers.mutable_code(code),
                                          markers.mutable_code(twin.code))
    except ProviderError as exc:
        result.note = f"the novelty judge failed ({exc}); accepted, as no program of the run is the same"
        return result
    if novel:
        await ws.archive.add_event(run_id, "novelty_judged_novel", {"nearest": nearest, "similarity": similarity,
                                                                    "reason": verdict[:500]})
        result.note = f"above the threshold, but the judge found it meaningfully different: {verdict[:300]}"
        return result
    if override:
        await ws.archive.add_event(run_id, "novelty_overridden", {"nearest": nearest, "similarity": similarity,
                                                                  "judge": verdict[:500], "reason": override})
        result.override = override
        result.note = f"the judge found it not different from program {nearest}; stored on your override"
        return result
    await ws.archive.add_event(run_id, "novelty_rejected", {"nearest": nearest, "similarity": similarity,
                                                            "island": island, "judge": verdict[:500]})
    raise EvoError(
        f"the run's novelty judge found this program not meaningfully different from program {nearest} "
        f"(cosine similarity {similarity!r} > novelty_threshold {config.novelty_threshold!r}); the judge said: "
        f"{verdict[:300]}. Nothing was stored. What would pass: a change the judge finds meaningful (another "
        f"approach or move, not only nudged constants), or, without a judge, any change of behaviour. "
        f"{OVERRIDE_HINT}")
