"""Code-novelty rejection: embed the mutable code, refuse near-copies of what the island holds.

The default embedder needs no model and no network: signed feature hashing of token
1- to 3-grams into a float32 vector, L2-normalised (stable across processes: crc32,
not Python's salted hash). Each island's embeddings are one float32 matrix, so a
check is one matrix-vector product.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import markers

DIM = 512
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
    ids: list[int] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), dtype=np.float32))
    size: int = 0

    def add(self, program_id: int, vector: np.ndarray) -> None:
        if self.size == len(self.matrix):  # grow by doubling: amortised O(1) appends
            grown = np.zeros((max(16, 2 * len(self.matrix)), vector.shape[0]), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        self.matrix[self.size] = vector
        self.ids.append(program_id)
        self.size += 1

    def nearest(self, vector: np.ndarray) -> tuple[int | None, float]:
        if self.size == 0:
            return None, 0.0
        sims = self.matrix[: self.size] @ vector
        i = int(np.argmax(sims))
        return self.ids[i], float(sims[i])


class NoveltyIndex:
    """In-memory per-run, per-island embedding matrices, rebuilt from the archive on first use."""

    def __init__(self) -> None:
        self._runs: dict[int, dict[int, _Island]] = {}

    def loaded(self, run_id: int) -> bool:
        return run_id in self._runs

    def load(self, run_id: int, rows: list[tuple[int, int, bytes]]) -> None:
        islands: dict[int, _Island] = {}
        for program_id, island, blob in rows:
            islands.setdefault(island, _Island()).add(program_id, np.frombuffer(blob, dtype=np.float32))
        self._runs[run_id] = islands

    def forget(self, run_id: int) -> None:
        self._runs.pop(run_id, None)

    def add(self, run_id: int, island: int, program_id: int, vector: np.ndarray) -> None:
        if run_id in self._runs:
            self._runs[run_id].setdefault(island, _Island()).add(program_id, vector)

    def nearest(self, run_id: int, island: int, vector: np.ndarray) -> tuple[int | None, float]:
        return self._runs.get(run_id, {}).get(island, _Island()).nearest(vector)
