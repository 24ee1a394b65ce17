"""The archive on a real SQLite file: schema, writes, queries, persistence."""

import os
import sqlite3

import pytest

from evomcp.store import Archive, BadCursor, DuplicateProgram, EvaluationResult, StorageError
from evomcp.store.schema import MIGRATIONS, SCHEMA_VERSION
from evomcp.testing import oracles
from evomcp.tools.population import Population


async def _run_with_programs(archive, scores):
    run = await archive.create_run("r", "t", "t", {"selection": "weighted"}, 1.0)
    ids = []
    parent = None
    for i, score in enumerate(scores):
        p = await archive.insert_program(run_id=run.id, parent_id=parent, island=0, generation=i,
                                         code=f"x = {i}\n", code_hash=f"h{i}", diff=None, patch_type="diff",
                                         description=None)
        await archive.save_result(p.id, EvaluationResult(status="evaluated", correct=score is not None,
                                                         combined_score=score))
        ids.append(p.id)
        parent = p.id
    return run, ids


async def test_schema_versioned_and_wal(db_path):
    archive = await Archive.open(db_path)
    await archive.close()
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


async def test_an_archive_of_the_first_schema_is_migrated_and_keeps_its_runs(db_path):
    con = sqlite3.connect(db_path)
    con.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version=1;\nCOMMIT;")
    con.execute("INSERT INTO runs(name, task, task_path, config, status, created_at, updated_at)"
                " VALUES ('old', 't', 't', '{}', 'running', 0, 0)")
    con.commit()
    con.close()
    archive = await Archive.open(db_path)
    (run,) = await archive.list_runs()
    call = await archive.add_llm_call(run.id, "m", "mutation", prompt_tokens=3, ok=True)
    assert call > 0 and (await archive.llm_call_stats(run.id))["m"]["calls"] == 1
    assert await archive.integrity_check() == "ok"
    await archive.close()
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION > 1
    con.close()


async def test_programs_of_an_older_archive_get_the_operator_their_proposals_named(db_path):
    """Schema 5 records a program's operator on its row; the migration fills it in from the proposals' events."""
    con = sqlite3.connect(db_path)
    con.executescript("BEGIN;\n" + "\n".join(MIGRATIONS[:4]) + "\nPRAGMA user_version=4;\nCOMMIT;")
    con.execute("INSERT INTO runs(name, task, task_path, config, status, created_at, updated_at)"
                " VALUES ('old', 't', 't', '{}', 'running', 0, 0)")
    for pid, parent in ((1, None), (2, 1), (3, 1), (4, 1)):
        con.execute("INSERT INTO programs(id, run_id, parent_id, generation, code, code_hash, patch_type, status,"
                    " created_at) VALUES (?, 1, ?, 0, ?, ?, 'full', 'pending', 0)", (pid, parent, f"x={pid}", str(pid)))
    for data in ('{"program": 2, "parent": 1, "operator": "model-a"}', '{"program": 3, "parent": 1, "operator": null}',
                 'not json', '{"program": 4, "parent": 1, "operator": "perturb"}'):
        con.execute("INSERT INTO events(run_id, ts, kind, data) VALUES (1, 0, 'proposed', ?)", (data,))
    con.commit()
    con.close()
    archive = await Archive.open(db_path)
    programs = await archive.get_programs(1, [1, 2, 3, 4])
    assert [p.operator for p in programs] == [None, "model-a", None, "perturb"]
    new = await archive.insert_program(run_id=1, parent_id=1, island=0, generation=1, code="x=5", code_hash="5",
                                       diff=None, patch_type="diff", description=None, operator="model-b")
    assert new.operator == "model-b" == (await archive.get_program(1, new.id)).operator
    await archive.close()


async def test_the_seeds_island_copies_of_an_older_archive_become_memberships(db_path):
    """Schema 6 holds island membership as data: the seed's row copies of older archives fold into the seed (their
    children re-parented, their islands its memberships); the other programs keep their islands."""
    con = sqlite3.connect(db_path)
    con.executescript("BEGIN;\n" + "\n".join(MIGRATIONS[:5]) + "\nPRAGMA user_version=5;\nCOMMIT;")
    for run in (1, 2):
        con.execute("INSERT INTO runs(name, task, task_path, config, status, created_at, updated_at)"
                    " VALUES ('old', 't', 't', '{}', 'running', 0, 0)")
    rows = [  # id, run, parent, island: run 1's seed 1 copied onto islands 1 and 2 (ids 2, 3); 4 was migrated to 2
        (1, 1, None, 0), (2, 1, None, 1), (3, 1, None, 2), (4, 1, 2, 2), (5, 1, 3, 2), (6, 1, 1, 0),
        (7, 2, None, 0), (8, 2, 7, 0)]
    for pid, run, parent, island in rows:
        con.execute("INSERT INTO programs(id, run_id, parent_id, island, generation, code, code_hash, patch_type,"
                    " status, created_at) VALUES (?, ?, ?, ?, 0, 'x', ?, 'full', 'evaluated', 0)",
                    (pid, run, parent, island, str(pid)))
    con.commit()
    con.close()
    archive = await Archive.open(db_path)
    assert [(p.id, p.parent_id, p.island) for p in await archive.get_programs(1, [1, 2, 3, 4, 5, 6])] == [
        (1, None, 0), (4, 1, 2), (5, 1, 2), (6, 1, 0)]
    assert await archive.memberships(1) == [(1, 0), (1, 1), (1, 2), (4, 2), (5, 2), (6, 0)]
    assert await archive.memberships(2) == [(7, 0), (8, 0)]
    assert await archive.counts_by_status(1) == {"evaluated": 4}
    assert await archive.integrity_check() == "ok" and not await archive._rows("PRAGMA foreign_key_check")
    new = await archive.insert_program(run_id=1, parent_id=1, island=1, generation=1, code="y", code_hash="y",
                                       diff=None, patch_type="diff", description=None)
    assert (new.id, 1) in await archive.memberships(1)  # a new program joins the island it was proposed on
    await archive.close()


def _schema_5_archive(path):
    """An archive as evomcp wrote it before island membership: the seed (1) copied onto island 1 (2)."""
    path.parent.mkdir(exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript("BEGIN;\n" + "\n".join(MIGRATIONS[:5]) + "\nPRAGMA user_version=5;\nCOMMIT;")
    con.execute("INSERT INTO runs(name, task, task_path, config, status, created_at, updated_at)"
                " VALUES ('old', 't', 't', '{}', 'running', 0, 0)")
    for pid, parent, island in ((1, None, 0), (2, None, 1), (3, 2, 1)):
        con.execute("INSERT INTO programs(id, run_id, parent_id, island, generation, code, code_hash, patch_type,"
                    " status, created_at) VALUES (?, 1, ?, ?, 0, 'x', ?, 'full', 'evaluated', 0)",
                    (pid, parent, island, str(pid)))
    con.commit()
    con.close()


async def test_a_read_only_command_upgrades_an_older_archive_it_may_write(tmp_path):
    path = tmp_path / "writable" / "archive.db"
    _schema_5_archive(path)
    reader = await Archive.open(path, read_only=True)
    assert await reader.memberships(1) == [(1, 0), (1, 1), (3, 1)] and await reader.counts_by_status(1) == {
        "evaluated": 2}
    await reader.close()


async def test_a_read_only_command_says_why_it_cannot_upgrade_an_older_archive_it_may_not_write(tmp_path):
    locked = tmp_path / "locked"
    _schema_5_archive(locked / "archive.db")
    locked.chmod(0o555)
    (locked / "archive.db").chmod(0o444)
    try:
        if os.access(locked / "archive.db", os.W_OK):
            pytest.skip("this user (root) writes whatever the mode says: the refusal cannot be reached as root")
        with pytest.raises(StorageError, match="written by an older evomcp .schema 5; this one reads"):
            await Archive.open(locked / "archive.db", read_only=True)
    finally:
        locked.chmod(0o755)


async def test_newer_schema_is_refused(db_path):
    con = sqlite3.connect(db_path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(StorageError, match="upgrade evomcp"):
        await Archive.open(db_path)


async def test_writes_are_durable_without_close(db_path):
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0, 2.0])
    # a second connection sees everything at once: each write was committed before returning
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM programs").fetchone()[0] == 2
    assert con.execute("SELECT combined_score FROM programs WHERE id=?", (ids[1],)).fetchone()[0] == 2.0
    con.close()
    await archive.close()


async def test_duplicate_code_names_its_twin(db_path):
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0])
    with pytest.raises(DuplicateProgram) as info:
        await archive.insert_program(run_id=run.id, parent_id=None, island=0, generation=0, code="x = 0\n",
                                     code_hash="h0", diff=None, patch_type="full", description=None)
    assert info.value.twin_id == ids[0]
    await archive.close()


async def test_pages_by_score_with_cursor_cover_everything_once(db_path):
    archive = await Archive.open(db_path)
    scores = [0.5, 2.0, None, 1.0, 2.0, 0.1, None, 3.0]
    run, ids = await _run_with_programs(archive, scores)
    seen, cursor = [], None
    while True:
        rows, cursor = await archive.page_programs(run.id, order="score", limit=3, cursor=cursor)
        seen += rows
        if cursor is None:
            break
    assert sorted(r["id"] for r in seen) == sorted(ids)
    got = [r["combined_score"] for r in seen]
    assert got[:6] == [3.0, 2.0, 2.0, 1.0, 0.5, 0.1] and got[6:] == [None, None]
    newest, _ = await archive.page_programs(run.id, order="newest", limit=2)
    assert [r["id"] for r in newest] == ids[::-1][:2]
    correct, _ = await archive.page_programs(run.id, correct_only=True, limit=50)
    assert len(correct) == 6
    with pytest.raises(BadCursor):
        await archive.page_programs(run.id, cursor="not-a-cursor")
    await archive.close()


async def test_lineage_counts_best_and_reopen(db_path):
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0, 1.5, None, 0.2])
    chain = await archive.lineage(run.id, ids[-1])
    assert [r["id"] for r in chain] == ids
    assert await archive.counts_by_status(run.id) == {"evaluated": 4}
    assert (await archive.best_program(run.id))["id"] == ids[1]
    await archive.close()
    reopened = await Archive.open(db_path)
    assert (await reopened.best_program(run.id))["combined_score"] == 1.5
    assert (await reopened.get_run(run.id)).config == {"selection": "weighted"}
    assert await reopened.integrity_check() == "ok"
    await reopened.close()


async def test_selection_pool_counts_pending_children(db_path):
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0])
    await archive.insert_program(run_id=run.id, parent_id=ids[0], island=0, generation=1, code="y=1\n",
                                 code_hash="c1", diff=None, patch_type="diff", description=None)
    loaded = Population.from_rows(await archive.population_rows(run.id), await archive.memberships(run.id))
    ids_in_pool, _, children, _ = loaded.pool(None)
    assert dict(zip(ids_in_pool.tolist(), children.tolist())) == oracles.selection_pool(db_path, run.id) == {ids[0]: 1}
    await archive.close()


async def test_pending_ids_reach_past_the_oldest_few_hundred(db_path):
    """What a resumed driver evaluates first: every pending program, however many came before it."""
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0] * 250)
    pending = []
    for i in range(3):
        p = await archive.insert_program(run_id=run.id, parent_id=ids[-1], island=0, generation=251, code=f"z={i}\n",
                                         code_hash=f"z{i}", diff=None, patch_type="diff", description=None)
        pending.append(p.id)
    await archive.set_program_status(pending[1], "running")
    assert await archive.pending_ids(run.id) == [pending[0], pending[2]]
    assert await archive.reset_unfinished() == 1
    assert await archive.pending_ids(run.id) == pending
    await archive.close()


async def test_an_islands_pages_hold_its_members_in_each_order(db_path):
    """get_archive's island filter: paged with cursors in every order, the pages
    are exactly the members (the seed on both islands, a migrated program where it went) in that order."""
    archive = await Archive.open(db_path)
    run, ids = await _run_with_programs(archive, [1.0, 1.5, None, 0.2, 1.5, 0.7])
    await archive.join_islands(run.id, ids[0], [1])
    await archive.move_programs(run.id, [(ids[4], 0, 1)])
    members = {0: set(ids) - {ids[4]}, 1: {ids[0], ids[4]}}
    rows = {r["id"]: r for r in (await archive.page_programs(run.id, order="oldest", limit=200))[0]}
    for island, expected in members.items():
        for order in ("score", "newest", "oldest"):
            seen, cursor = [], None
            while True:
                page, cursor = await archive.page_programs(run.id, order=order, limit=2, cursor=cursor, island=island)
                seen += [r["id"] for r in page]
                if cursor is None:
                    break
            key = {"oldest": lambda i: i, "newest": lambda i: -i,
                   "score": lambda i: (-(rows[i]["combined_score"] if rows[i]["combined_score"] is not None
                                         else -1e308), i)}[order]
            assert seen == sorted(expected, key=key), (island, order)
    await archive.close()
