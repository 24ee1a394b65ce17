"""In-memory index of a run's programs: what selection, counts and elites need, as numpy arrays.

SQLite stays the source of truth; this index is rebuilt from it when a run is first used
and then kept in step by tools/run_state.py, the one writer (propose, evaluate, migrate, seed). It turns
per-call table scans (children counts, status counts, an island's pool, top-k) into a few
vectorised operations, which is what keeps sample_parent in the low milliseconds on runs of
a million programs. One server process writes an archive file at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

STATUSES = ("pending", "running", "evaluated", "failed")
_CODE = {name: i for i, name in enumerate(STATUSES)}


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class Population:
    def __init__(self, capacity: int = 1024):
        self._pos: dict[int, int] = {}
        self.size = 0
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.parent_pos = np.full(capacity, -1, dtype=np.int64)
        self.island = np.zeros(capacity, dtype=np.int32)  # an island it is a member of (its lowest)
        self.more_islands: dict[int, set[int]] = {}  # position -> its other islands: the seed, a member of each
        self.generation = np.zeros(capacity, dtype=np.int32)
        self.status = np.zeros(capacity, dtype=np.int8)
        self.correct = np.zeros(capacity, dtype=bool)
        self.score = np.full(capacity, np.nan)
        self.children = np.zeros(capacity, dtype=np.int32)
        self._cache: dict[tuple, object] = {}
        self._pool_cache: dict[tuple, object] = {}  # what depends on the pools only: kept until a pool changes

    def _changed(self, pool: bool = True) -> None:
        """Drop cached answers. pool=False when no pool changed (a new pending program, pending to running):
        the pools, their top-k and what selection memoises on their score arrays then survive."""
        self._cache.clear()
        if pool:
            self._pool_cache.clear()

    def _in_pool(self, i: int) -> bool:
        return bool(self.correct[i] and self.status[i] == _CODE["evaluated"] and not np.isnan(self.score[i]))

    # building ----------------------------------------------------------------

    def _grow(self) -> None:
        for name in ("ids", "parent_pos", "island", "generation", "status", "correct", "score", "children"):
            old = getattr(self, name)
            new = np.empty(2 * len(old), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.parent_pos[self.size :] = -1
        self.score[self.size :] = np.nan
        self.children[self.size :] = 0

    def add(self, program_id: int, parent_id: int | None, island: int, generation: int, status: str = "pending",
            correct: bool | None = None, score: float | None = None) -> None:
        if program_id in self._pos:
            return
        if self.size == len(self.ids):
            self._grow()
        i = self.size
        self._pos[program_id] = i
        self.ids[i] = program_id
        parent = self._pos.get(parent_id, -1) if parent_id is not None else -1
        self.parent_pos[i] = parent
        if parent >= 0:
            self.children[parent] += 1
        self.island[i] = island
        self.generation[i] = generation
        self.status[i] = _CODE[status]
        self.correct[i] = bool(correct)
        self.score[i] = np.nan if score is None else score
        self.children[i] = 0
        self.size += 1
        self._changed(pool=self._in_pool(i))

    @classmethod
    def from_rows(cls, rows: Iterable, memberships: Iterable[tuple[int, int]] | None = None) -> Population:
        """Rows of (id, parent_id, island, generation, status, correct, combined_score), oldest first, and the
        (program id, island) memberships (Archive.memberships; None: each program on the island of its row).

        Vectorised: a million rows load in about a second.
        """
        rows = list(rows)
        n = len(rows)
        population = cls(capacity=max(1024, 2 * n))
        if n == 0:
            return population
        ids, parents, islands, generations, statuses, corrects, scores = zip(*rows)
        population.ids[:n] = ids
        population._pos = {program_id: i for i, program_id in enumerate(ids)}
        pos = population._pos
        parent_pos = np.fromiter((pos.get(p, -1) if p is not None else -1 for p in parents), np.int64, n)
        population.parent_pos[:n] = parent_pos
        population.island[:n] = islands
        population.generation[:n] = generations
        population.status[:n] = [_CODE[s] for s in statuses]
        population.correct[:n] = [bool(c) for c in corrects]
        population.score[:n] = [np.nan if v is None else v for v in scores]
        if memberships is not None:
            population._seat(list(memberships))
        linked = parent_pos[parent_pos >= 0]
        population.children[:n] = np.bincount(linked, minlength=n)[:n] if len(linked) else 0
        population.size = n
        return population

    # updates -----------------------------------------------------------------

    def set_status(self, program_id: int, status: str) -> None:
        i = self._pos.get(program_id)
        if i is not None:
            was = self._in_pool(i)
            self.status[i] = _CODE[status]
            self._changed(pool=was or self._in_pool(i))

    def set_result(self, program_id: int, status: str, correct: bool, score: float | None) -> None:
        i = self._pos.get(program_id)
        if i is not None:
            was = self._in_pool(i)
            self.status[i] = _CODE[status]
            self.correct[i] = correct
            self.score[i] = np.nan if score is None else score
            self._changed(pool=was or self._in_pool(i))

    def _seat(self, memberships: list[tuple[int, int]]) -> None:
        """Islands from (program id, island) pairs in program then island order: the first of each program in
        `island`, the others (few: the seed's) in `more_islands`."""
        if not memberships:
            return
        pairs = np.array(memberships, dtype=np.int64)
        pos = np.fromiter((self._pos.get(int(p), -1) for p in pairs[:, 0]), np.int64, len(pairs))
        known = pos >= 0
        pos, islands = pos[known], pairs[known, 1]
        first = np.ones(len(pos), bool)
        first[1:] = pos[1:] != pos[:-1]
        self.island[pos[first]] = islands[first]
        for i, island in zip(pos[~first].tolist(), islands[~first].tolist()):
            self.more_islands.setdefault(i, set()).add(island)

    def join(self, program_id: int, islands: Iterable[int]) -> None:
        """A program becomes a member of more islands (the seed of every island)."""
        i = self._pos.get(program_id)
        if i is not None:
            self._set_islands(i, self.islands_at(i) | set(islands))
            self._changed()

    def move(self, moves: Iterable[tuple[int, int, int]]) -> None:
        """A migration: (program id, from island, to island) each, taken together (as Archive.move_programs):
        a program leaves the islands it moves from unless it also moves to them."""
        leaving: dict[int, set[int]] = {}
        joining: dict[int, set[int]] = {}
        for program_id, source, to in moves:
            leaving.setdefault(program_id, set()).add(source)
            joining.setdefault(program_id, set()).add(to)
        for program_id, sources in leaving.items():
            i = self._pos.get(program_id)
            if i is not None:
                self._set_islands(i, (self.islands_at(i) - sources) | joining[program_id])
        self._changed()

    def islands_at(self, i: int) -> set[int]:
        return {int(self.island[i])} | self.more_islands.get(i, set())

    def islands_of(self, program_id: int) -> list[int]:
        """The islands a program is a member of, lowest first ([] if not a program of this run)."""
        i = self._pos.get(program_id)
        return [] if i is None else sorted(self.islands_at(i))

    def _set_islands(self, i: int, islands: set[int]) -> None:
        ordered = sorted(islands)
        self.island[i] = ordered[0]
        if len(ordered) > 1:
            self.more_islands[i] = set(ordered[1:])
        else:
            self.more_islands.pop(i, None)

    # queries -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Programs by status."""
        if "counts" not in self._cache:
            tally = np.bincount(self.status[: self.size], minlength=len(STATUSES))
            self._cache["counts"] = {name: int(k) for name, k in zip(STATUSES, tally) if k}
        return dict(self._cache["counts"])  # type: ignore[arg-type]

    def evaluations(self) -> int:
        """Evaluations that finished (evaluated or failed): the seed once, and every candidate."""
        counts = self.counts()
        return counts.get("evaluated", 0) + counts.get("failed", 0)

    def candidates_evaluated(self) -> int:
        """Evaluations that finished of programs with a parent: what evaluation budgets count (not the seed)."""
        n = self.size
        done = (self.status[:n] == _CODE["evaluated"]) | (self.status[:n] == _CODE["failed"])
        return int((done & (self.parent_pos[:n] >= 0)).sum())

    def _correct_positions(self, island: int | None) -> np.ndarray:
        key = ("positions", island)
        if key not in self._pool_cache:
            self._pool_cache[key] = np.flatnonzero(self._correct_mask(island))
        return self._pool_cache[key]  # type: ignore[return-value]

    def _correct_mask(self, island: int | None) -> np.ndarray:
        n = self.size
        mask = self.correct[:n] & (self.status[:n] == _CODE["evaluated"]) & ~np.isnan(self.score[:n])
        if island is not None:
            mask &= self._members(island)
        return mask

    def _members(self, island: int) -> np.ndarray:
        members = self.island[: self.size] == island
        for i, more in self.more_islands.items():
            members[i] |= island in more
        return members

    def pool(self, island: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, children, generations) of the correct evaluated programs of an island.

        Read-only arrays, the same objects until the pool changes (children: until any change), so that
        selection can memoise what it derives from the scores (selection._Memo).
        """
        key = ("pool", island)
        if key not in self._pool_cache:
            where = self._correct_positions(island)
            self._pool_cache[key] = tuple(_frozen(a[where]) for a in (self.ids, self.score, self.generation))
        ids, scores, generations = self._pool_cache[key]  # type: ignore[misc]
        key = ("children", island)
        if key not in self._cache:
            self._cache[key] = _frozen(self.children[self._correct_positions(island)])
        return ids, scores, self._cache[key], generations  # type: ignore[return-value]

    def top_ids(self, k: int, island: int | None = None) -> list[int]:
        """The k best correct programs, best first (ties: the older first)."""
        key = ("top", k, island)
        if key not in self._pool_cache:
            self._pool_cache[key] = self._top_ids(k, island)
        return list(self._pool_cache[key])  # type: ignore[arg-type]

    def _top_ids(self, k: int, island: int | None) -> list[int]:
        where = self._correct_positions(island)
        if len(where) == 0 or k <= 0:
            return []
        scores = self.score[where]
        if len(where) > k:  # keep every program tied with the k-th score, then order exactly
            kth = -np.partition(-scores, k - 1)[k - 1]
            keep = scores >= kth
            where, scores = where[keep], scores[keep]
        order = np.lexsort((self.ids[where], -scores))
        return [int(self.ids[i]) for i in where[order][:k]]

    def score_of(self, program_id: int | None) -> float | None:
        """A program's combined score (None: no score, or not a program of this run)."""
        i = self._pos.get(program_id)
        return None if i is None or np.isnan(self.score[i]) else float(self.score[i])

    def best_score(self) -> float | None:
        top = self.top_ids(1)
        return self.score_of(top[0]) if top else None

    def island_stats(self) -> dict[int, dict[str, float | int | None]]:
        if "islands" in self._cache:
            return self._cache["islands"]  # type: ignore[return-value]
        n = self.size
        islands = np.concatenate([self.island[:n], [k for more in self.more_islands.values() for k in more]])
        positions = np.concatenate([np.arange(n), [i for i, more in self.more_islands.items() for _ in more]])
        programs = np.bincount(islands.astype(np.int64)) if n else np.zeros(0, np.int64)
        correct = np.bincount(islands.astype(np.int64), weights=self.correct[positions.astype(np.int64)],
                              minlength=len(programs)) if n else np.zeros(0)
        stats = {}
        for island in np.flatnonzero(programs):
            top = self.top_ids(1, int(island))
            stats[int(island)] = {
                "programs": int(programs[island]),
                "correct": int(correct[island]),
                "best_id": top[0] if top else None,
                "best_score": self.score_of(top[0]) if top else None,
            }
        self._cache["islands"] = stats
        return stats
