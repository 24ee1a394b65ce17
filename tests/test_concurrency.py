"""Several agents over streamable HTTP and the built-in driver, all on one run at once."""

import sqlite3

import anyio
import numpy as np
from mcp import Client

from conftest import driver_finished, poll_run_status, start_driven_run
from evomcp.testing.servers import free_port, mcp_url, running_http_server
from evomcp.tools.perturb import perturb

AGENTS, CYCLES = 4, 10


async def agent(url, run_id, seed, told):
    rng = np.random.default_rng(seed)
    async with Client(url) as client:
        for _ in range(CYCLES):
            sampled = (await client.call_tool("sample_parent", {"run_id": run_id})).structured_content
            change = None
            while change is None:
                change = perturb(sampled["parent"]["code"], rng)
            result = await client.call_tool("propose_candidate", {
                "run_id": run_id, "parent_id": sampled["parent"]["id"], "code": change[0],
                "ticket": sampled["ticket"], "description": change[1]})
            if not result.is_error:
                told.append(result.structured_content["program"]["id"])
            else:  # small numeric changes pass the novelty check: only an exact repeat is refused
                assert "duplicate" in result.content[0].text, result.content[0].text
                assert "What would pass" in result.content[0].text, result.content[0].text


async def test_agents_and_driver_share_a_run(tmp_path):
    db, port = tmp_path / "many.db", free_port()
    url = mcp_url(port)
    with running_http_server(db, port, "--no-auth"):
        run_id = await start_driven_run(url, task="circle_packing_26", config={"num_islands": 3},  # novelty on
                                        driver={"max_evaluations": 40, "concurrency": 2})
        told: list[int] = []
        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                for seed in range(AGENTS):
                    tg.start_soon(agent, url, run_id, seed, told)
            status = await poll_run_status(url, run_id, driver_finished, interval=0.2)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, code_hash, status, island, generation FROM programs WHERE run_id = ?",
                       (run_id,)).fetchall()
    (members,) = con.execute("SELECT COUNT(*) FROM island_members WHERE run_id = ?", (run_id,)).fetchone()
    con.close()
    ids = [r[0] for r in rows]
    assert len(told) == len(set(told)) and set(told) <= set(ids)  # nothing a client was told is lost
    non_seed = [r for r in rows if r[4] > 0]
    assert len({r[1] for r in non_seed}) == len(non_seed)  # no program stored twice
    assert len(told) >= AGENTS * CYCLES * 0.8
    assert all(r[2] in ("evaluated", "failed") for r in rows)
    # the seed is one program though it sits on each of the 3 islands
    assert status["evaluations_finished"] == len(rows) == len(non_seed) + 1 and status["in_flight"] == 0
    assert sum(i["programs"] for i in status["islands"].values()) == members  # every island's members
    assert len(rows) + 2 >= members >= len(rows)  # each program on one island, the seed on up to 3
    # the driver's budget counts every evaluation of the run since it started, the agents' included
    assert status["driver"]["evaluations"] > 0 and len(non_seed) >= 40
