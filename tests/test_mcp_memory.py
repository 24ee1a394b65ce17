"""The MCP surface through the real `mcp` client, in memory, in both protocol eras."""

import pytest
from mcp import Client

from conftest import DATA, GROW_RADII, rings_patch
from evomcp.server.app import build_server

MODES = ["auto", "legacy"]
STEP_TOOLS = {"list_tasks", "start_run", "list_runs", "get_run_status", "stop_run", "sample_parent",
              "propose_candidate", "evaluate", "get_archive", "get_program", "get_lineage"}


async def call_ok(client, name, args=None, **kw):
    result = await client.call_tool(name, args or {}, **kw)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def call_err(client, name, args):
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} should have failed"
    return result.content[0].text


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_schemas_and_hints(ws, mode):
    async with Client(build_server(ws), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert STEP_TOOLS <= set(tools)
        for name in ("list_tasks", "list_runs", "get_run_status", "get_archive", "get_program", "get_lineage"):
            assert tools[name].annotations.read_only_hint is True
        assert tools["propose_candidate"].annotations.read_only_hint is False
        for tool in tools.values():  # structured output everywhere but the image tool
            assert tool.description and (tool.output_schema or tool.name == "get_progress_plot"), tool.name
        assert "sample_parent" in (client.instructions or "")


@pytest.mark.parametrize("mode", MODES)
async def test_full_loop_in_memory(ws, mode):
    async with Client(build_server(ws), mode=mode) as client:
        tasks = await call_ok(client, "list_tasks")
        assert "circle_packing_26" in [t["name"] for t in tasks["tasks"]]
        status = await call_ok(client, "start_run", {"task": "circle_packing_26", "name": "memory",
                                                  "config": {"novelty": False, "num_islands": 1}})
        run_id = status["run"]["run_id"]
        seed = status["best"]
        assert seed["generation"] == 0 and status["target_score"] == 2.6359830849
        sampled = await call_ok(client, "sample_parent", {"run_id": run_id})
        assert sampled["parent"]["id"] == seed["id"]
        assert "<<<<<<< SEARCH" in sampled["brief"] and repr(seed["combined_score"]) in sampled["brief"]
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        result = await call_ok(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed["id"], "patch": rings_patch(0.25, 0.45),
            "ticket": sampled["ticket"], "description": "wider rings"}, progress_callback=on_progress)
        assert progress and "evaluating" in progress[0]
        child = result["program"]
        assert child["status"] == "evaluated" and child["correct"]
        assert result["delta_to_parent"] == pytest.approx(child["combined_score"] - seed["combined_score"])
        assert result["is_new_best"] == (child["combined_score"] > seed["combined_score"])
        again = await call_ok(client, "wait_for", {"run_id": run_id, "program_ids": [child["id"]]})  # long finished
        assert again["finished"][0]["text_feedback"] == result["text_feedback"] is not None
        # propose without evaluating, then evaluate
        pending = await call_ok(client, "propose_candidate", {
            "run_id": run_id, "parent_id": child["id"], "patch": rings_patch(0.23, 0.44).replace(
                "(8, 0.22), (17, 0.42)", "(8, 0.25), (17, 0.45)"), "evaluate": False})
        assert pending["program"]["status"] == "pending"
        evaluated = await call_ok(client, "evaluate", {"run_id": run_id, "program_id": pending["program"]["id"]})
        assert evaluated["program"]["status"] == "evaluated"
        page = await call_ok(client, "get_archive", {"run_id": run_id, "limit": 2})
        assert len(page["programs"]) == 2 and page["next_cursor"]
        scores = [p["combined_score"] for p in page["programs"]]
        assert scores == sorted(scores, reverse=True)
        rest = await call_ok(client, "get_archive", {"run_id": run_id, "limit": 2, "cursor": page["next_cursor"]})
        assert len(rest["programs"]) == 1 and rest["next_cursor"] is None
        assert "code" not in page["programs"][0]
        program = await call_ok(client, "get_program", {"run_id": run_id, "program_id": child["id"]})
        assert "0.25" in program["code"] and "+    rings = [(8, 0.25), (17, 0.45)]" in program["diff"]
        lineage = await call_ok(client, "get_lineage", {"run_id": run_id, "program_id": pending["program"]["id"]})
        assert [p["id"] for p in lineage["chain"]] == [seed["id"], child["id"], pending["program"]["id"]]
        resource = await client.read_resource(program["resource_uri"])
        assert resource.contents[0].text == program["code"]
        runs = await call_ok(client, "list_runs")
        assert run_id in [r["run_id"] for r in runs["runs"]]
        status = await call_ok(client, "get_run_status", {"run_id": run_id})
        assert status["counts"] == {"evaluated": 3} and status["evaluations_finished"] == 3
        assert status["in_flight"] == 0 and status["tickets_outstanding"] == 0 and status["time_limit_s"] == 30
        stopped = await call_ok(client, "stop_run", {"run_id": run_id})
        assert stopped["run"]["status"] == "stopped"





async def test_bad_input_gets_errors_that_say_what_to_do(ws):
    async with Client(build_server(ws)) as client:
        status = await call_ok(client, "start_run", {"task": "circle_packing_26", "config": {"num_islands": 1}})
        run_id, seed = status["run"]["run_id"], status["best"]["id"]
        assert "list_runs" in await call_err(client, "get_run_status", {"run_id": 999})
        assert "get_archive" in await call_err(client, "get_program", {"run_id": run_id, "program_id": 999})
        assert "neither a built-in task" in await call_err(client, "start_run", {"task": "no_such_task"})
        message = await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "patch": rings_patch(1, 2).replace("0.22", "0.99")})
        assert "does not match" in message and "closest region" in message
        outside = "<<<<<<< SEARCH\nN_CIRCLES = 26\n=======\nN_CIRCLES = 2\n>>>>>>> REPLACE"
        assert "outside the EVOLVE-BLOCK" in await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "patch": outside})
        program = (await call_ok(client, "get_program", {"run_id": run_id, "program_id": seed}))["code"]
        broken = program.replace("# EVOLVE-BLOCK-END\n", "")
        assert "never closed" in await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "code": broken})
        assert "syntax error" in await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "patch": rings_patch(0.3, "(")})
        huge = "<<<<<<< SEARCH\n    rings = [(8, 0.22), (17, 0.42)]\n=======\n" + "x = 1\n" * 60000 + ">>>>>>> REPLACE"
        assert "over this run's limit" in await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "patch": huge})
        reworded = rings_patch(0.22, 0.42).replace("    rings = [(8, 0.22), (17, 0.42)]\n>", "    rings = [(8, .22), "
                                                    "(17, .42)]  # the same rings\n>")
        near_copy = await call_err(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                                 "patch": reworded})
        assert "duplicate of its parent" in near_copy and "Nothing was stored" in near_copy
        assert "What would pass" in near_copy and "novelty_override" in near_copy
        first = await call_ok(client, "propose_candidate", {"run_id": run_id, "parent_id": seed, "patch": GROW_RADII})
        assert first["novelty"]["checked"] and first["novelty"]["same_as"] is None
        message = await call_err(client, "propose_candidate", {"run_id": run_id, "parent_id": seed,
                                                               "patch": GROW_RADII})
        assert f"duplicate of program {first['program']['id']}" in message
        assert "exactly one of" in await call_err(client, "propose_candidate", {"run_id": run_id, "parent_id": seed})
        assert "cursor" in await call_err(client, "get_archive", {"run_id": run_id, "cursor": "garbage!"})
        assert "island 7 does not exist" in await call_err(client, "get_archive", {"run_id": run_id, "island": 7})
        beam = await call_ok(client, "sample_parent", {"run_id": run_id, "strategy": "beam", "island": 0})
        assert beam["island"] == 0 and beam["strategy"] == "beam"
        assert "island 1 does not exist" in await call_err(client, "sample_parent", {"run_id": run_id, "island": 1})
        by_score = await call_ok(client, "get_archive", {"run_id": run_id, "limit": 1})
        assert by_score["next_cursor"] is not None
        for other in ({"order": "newest"}, {"island": 0}, {"correct_only": True}):  # a cursor pages its own view
            assert "another order, island or correct_only" in await call_err(
                client, "get_archive", {"run_id": run_id, "limit": 1, "cursor": by_score["next_cursor"], **other})
        from mcp.shared.exceptions import MCPError

        with pytest.raises(MCPError) as missing:  # SEP-2164: an unknown resource is invalid params
            await client.read_resource(f"evomcp://runs/{run_id}/programs/99999")
        assert missing.value.code == -32602
        await call_ok(client, "stop_run", {"run_id": run_id})
        assert "is stopped" in await call_err(client, "sample_parent", {"run_id": run_id})
        assert "is stopped" in await call_err(client, "propose_candidate", {
            "run_id": run_id, "parent_id": seed, "patch": rings_patch(0.21, 0.41)})
        # nothing was lost along the way
        final = await call_ok(client, "get_run_status", {"run_id": run_id})
        assert final["counts"] == {"evaluated": 2} and final["novelty_rejections"] == 1


async def test_task_directory_run_and_failing_seed(ws, tmp_path):
    async with Client(build_server(ws)) as client:
        status = await call_ok(client, "start_run", {"task": str(DATA / "fn_task")})
        assert status["run"]["task"] == "toy_value" and status["best"]["combined_score"] == -2.0
        bad = tmp_path / "bad_task"
        bad.mkdir()
        (bad / "initial.py").write_text("# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n")
        (bad / "evaluate.py").write_text("raise ImportError('broken evaluator')\ndef evaluate(p):\n    return {}\n")
        message = await call_err(client, "start_run", {"task": str(bad)})
        assert "initial program failed" in message and "broken evaluator" in message
        (bad / "initial.py").write_text("x = 1\n")
        assert "no EVOLVE-BLOCK" in await call_err(client, "start_run", {"task": str(bad)})


async def test_progress_plot_prompt_and_report_command(ws, tmp_path):
    import subprocess
    import sys

    async with Client(build_server(ws)) as client:
        status = await call_ok(client, "start_run", {"task": "circle_packing_26", "config": {"num_islands": 1}})
        plot = await client.call_tool("get_progress_plot", {"run_id": status["run"]["run_id"]})
        assert not plot.is_error and plot.content[0].type == "image"
        assert plot.content[0].mime_type == "image/png"
        import base64

        assert base64.b64decode(plot.content[0].data)[:8] == b"\x89PNG\r\n\x1a\n"
        prompts = (await client.list_prompts()).prompts
        assert "evolve" in [p.name for p in prompts]
        text = (await client.get_prompt("evolve", {"task": "heilbronn_triangle_11"})).messages[0].content.text
        assert "sample_parent" in text and "heilbronn_triangle_11" in text
    out = subprocess.run([sys.executable, "-m", "evomcp", "report", "1", "--db", str(ws.archive.path), "-o",
                          str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'id="fig-best-score"' in (tmp_path / "r.html").read_text()
