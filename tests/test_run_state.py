"""RunState: the one writer of a run's programs keeps SQLite and its in-memory indexes in step."""

import re

import anyio

from conftest import rings_patch
from evomcp.tools import novelty, runs, steps
from evomcp.tools.population import Population


async def fresh(ws, run_id) -> Population:
    return Population.from_rows(await ws.archive.population_rows(run_id), await ws.archive.memberships(run_id))


def same(live: Population, loaded: Population, islands: int) -> None:
    assert live.counts() == loaded.counts()
    assert live.island_stats() == loaded.island_stats()
    assert live.candidates_evaluated() == loaded.candidates_evaluated()
    for island in range(islands):
        a, b = live.pool(island), loaded.pool(island)
        assert [x.tolist() for x in a] == [x.tolist() for x in b]


async def test_first_uses_at_once_load_one_index(ws):
    run_id = (await runs.start_run(ws, "circle_packing_26", config={"novelty": False})).run.run_id
    state = await ws.state(run_id)
    await state.reload()
    loaded = []

    async def use():
        loaded.append(await state.population())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(use)
    assert all(p is loaded[0] for p in loaded)  # one object: a write to it is never dropped by a second load


async def test_stopped_and_resumed_runs_keep_the_index_equal_to_the_archive(ws):
    """A stop that cuts an evaluation short (recorded failed), a resume (read back) and the seed's island
    copies: after each, the live index is what a fresh load of the file gives."""
    run_id = (await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 3})).run.run_id
    state = await ws.state(run_id)
    seed = (await runs.get_run_status(ws, run_id)).best
    same(await state.population(), await fresh(ws, run_id), 3)
    slow = rings_patch(0.25, 0.45).replace("=======\n", "=======\n    __import__('time').sleep(30)\n")
    stored = await steps.propose_candidate(ws, run_id, seed.id, patch=slow, wait_s=0.5)
    assert stored.program.status == "running"
    await runs.stop_run(ws, run_id)
    stopped = await ws.program(run_id, stored.program.id)
    assert stopped.status == "failed" and "stopped" in stopped.error
    same(await state.population(), await fresh(ws, run_id), 3)
    await runs.resume_run(ws, run_id)
    for k in range(4):
        await steps.propose_candidate(ws, run_id, seed.id, patch=rings_patch(0.21 + 0.001 * k, 0.43))
    same(await state.population(), await fresh(ws, run_id), 3)
    assert await state.best_score() == (await fresh(ws, run_id)).best_score()


async def test_the_judges_embeddings_follow_writes_and_migrations(ws):
    run_id = (await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 2})).run.run_id
    state = await ws.state(run_id)
    seed = (await runs.get_run_status(ws, run_id)).best
    nearest, similarity = await state.nearest(0, novelty.embed((await ws.program(run_id, seed.id)).code))
    assert nearest == seed.id and similarity > 0.999  # loaded from the archive on first use
    code = "# EVOLVE-BLOCK-START\nvalues = [1, 2, 3]\n# EVOLVE-BLOCK-END\n"
    vector = novelty.embed(code)
    program = await state.add_program(parent=await ws.program(run_id, seed.id), island=0, code=code,
                                      code_hash="h-test", patch_type="full", description=None, embedding=vector)
    nearest, similarity = await state.nearest(0, vector)
    assert nearest == program.id and similarity > 0.999  # indexed on write, without a reload
    await state.move([(program.id, 0, 1)])
    assert (await state.nearest(1, vector))[0] == program.id  # moved with its membership
    assert (await state.nearest(0, vector))[0] != program.id
    same(await state.population(), await fresh(ws, run_id), 2)


async def test_finished_programs_are_read_once_and_stay_true_to_the_archive(ws):
    """Parents, inspirations, the meta note and the migration count come from memory after their first read;
    what the run's state writes (a migration, a new evaluation) shows at once."""
    run_id = (await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 2,
                                                                    "migration_interval": 1000})).run.run_id
    state = await ws.state(run_id)
    seed = (await runs.get_run_status(ws, run_id)).best
    child = await steps.propose_candidate(ws, run_id, seed.id, patch=rings_patch(0.23, 0.44))
    assert (await ws.program(run_id, child.program.id)).island == 0
    statements = []
    await ws.archive._db.set_trace_callback(statements.append)
    try:
        for k in range(5):
            sampled = await steps.sample_parent(ws, run_id, island=0)
            code = re.sub(r"rings = \[.*\]", f"rings = [(8, {0.24 + 0.001 * k!r}), (17, 0.44)]", sampled.parent.code)
            await steps.propose_candidate(ws, run_id, sampled.parent.id, code=code, ticket=sampled.ticket)
    finally:
        await ws.archive._db.set_trace_callback(None)
    reads = [q for q in statements if q.startswith("SELECT * FROM programs WHERE id =")]
    notes = [q for q in statements if "FROM notes" in q]
    assert len(reads) == len(set(reads)) and len(notes) == len(set(notes)) <= 1, (reads, notes)  # at most once
    await state.move([(child.program.id, 0, 1)])
    assert (await state.population()).islands_of(child.program.id) == [1]
    assert (child.program.id, 1) in await ws.archive.memberships(run_id)
    assert (await ws.program(run_id, child.program.id)).island == 0  # the island it was proposed on
    again = await steps.evaluate(ws, run_id, (await steps.propose_candidate(
        ws, run_id, seed.id, patch=rings_patch(0.3, 0.5), evaluate_now=False)).program.id)
    assert (await ws.program(run_id, again.program.id)).status == "evaluated"


async def test_a_migration_that_sends_the_seed_round_every_island_leaves_it_on_each(ws):
    """A migration's moves are taken together: the seed, sent on by every island and received by each, stays a
    member of all of them (in SQLite and in the index alike)."""
    run_id = (await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "num_islands": 4})).run.run_id
    state = await ws.state(run_id)
    seed = (await runs.get_run_status(ws, run_id)).best.id
    child = await steps.propose_candidate(ws, run_id, seed, patch=rings_patch(0.23, 0.44))
    await state.move([(seed, i, (i + 1) % 4) for i in range(4)] + [(child.program.id, 0, 1)])
    assert (await state.population()).islands_of(seed) == [0, 1, 2, 3]
    assert (await state.population()).islands_of(child.program.id) == [1]
    assert [i for p, i in await ws.archive.memberships(run_id) if p == seed] == [0, 1, 2, 3]
    same(await state.population(), await fresh(ws, run_id), 4)
