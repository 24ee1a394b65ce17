"""Code-novelty rejection: embed the mutable code, refuse near-copies of what the island holds.

The default embedder needs no model and no network: signed feature hashing of token
1- to 3-grams into a float32 vector, L2-normalised (stable across processes: crc32,
not Python's salted hash). Each island's most recent embeddings (a window of
20,000 by default: near-copies are of recent work) are one float32 matrix, so a check is
one matrix-vector product of bounded cost however large the run grows.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import markers

DIM = 256
WINDOW = 20_000
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|[^\s\w]")


def embed(code: str, dim: int = DIM) -> np.ndarray:
    """Hashed token n-gram embedding of the EVOLVE-BLOCK regions of `code`."""
    try:
        text = markers.mutable_code(code)
    except Exception:  # noqa: BLE001 - no markers: embed everything
        text = code
    tokens = _TOKEN.findall(text)
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


class NoveltyIndex:
    """In-memory per-run, per-island embedding matrices, rebuilt from the archive on first use."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._runs: dict[int, dict[int, _Island]] = {}

    def loaded(self, run_id: int) -> bool:
        return run_id in self._runs

    def load(self, run_id: int, rows: list[tuple[int, int, bytes]]) -> None:
        """Rows of (id, island, embedding), oldest first."""
        islands: dict[int, _Island] = {}
        for program_id, island, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32)
            target = islands.setdefault(island, _Island(self.window))
            if target.added and vector.shape[0] != target.matrix.shape[1]:
                continue  # another embedder's dimension: not comparable
            target.add(program_id, vector)
        self._runs[run_id] = islands

    def forget(self, run_id: int) -> None:
        self._runs.pop(run_id, None)

    def add(self, run_id: int, island: int, program_id: int, vector: np.ndarray) -> None:
        if run_id in self._runs:
            self._runs[run_id].setdefault(island, _Island(self.window)).add(program_id, vector)

    def nearest(self, run_id: int, island: int, vector: np.ndarray) -> tuple[int | None, float]:
        return self._runs.get(run_id, {}).get(island, _Island()).nearest(vector)
