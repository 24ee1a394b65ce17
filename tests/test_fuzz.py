"""Property-based fuzzing of every tool's arguments through the in-memory MCP client.

Whatever the arguments (wrong types, huge or odd strings, extreme numbers, unknown ids, path
traversal), each call returns a result or a tool error with a message; the server never crashes
and the archive stays intact.
"""

import math

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from evomcp.server.app import build_server
from evomcp.tools.workspace import open_workspace

TOOLS = {
    "list_tasks": [],
    "start_run": ["task", "name", "config", "driver"],
    "list_runs": [],
    "get_run_status": ["run_id"],
    "stop_run": ["run_id"],
    "resume_run": ["run_id", "driver"],
    "sample_parent": ["run_id", "strategy", "island"],
    "propose_candidate": ["run_id", "parent_id", "patch", "code", "patch_type", "description", "evaluate", "ticket",
                          "novelty_override"],
    "evaluate": ["run_id", "program_id"],
    "get_archive": ["run_id", "limit", "cursor", "order", "island", "correct_only"],
    "get_program": ["run_id", "program_id"],
    "get_lineage": ["run_id", "program_id"],
    "get_progress_plot": ["run_id"],
}

PATHS = st.sampled_from(["../../../../etc/passwd", "/etc", "/", "~", "..", "./tests/../..", "/proc/self",
                         "circle_packing_26\x00", "C:\\Windows", "file:///etc/passwd", "%2e%2e%2f", ""])
NUMBERS = st.one_of(st.integers(), st.integers(-2**70, 2**70), st.sampled_from([0, -1, 1, 2, 3, 2**31, 2**63]),
                    st.floats(allow_nan=True, allow_infinity=True))
TEXT = st.one_of(st.text(max_size=50), st.text(min_size=1000, max_size=5000), PATHS,
                 st.sampled_from(["<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE", "# EVOLVE-BLOCK-START\n",
                                  "weighted", "diff", "full", "cross", "score", "\ud7ff\ufffd\U0001f600"]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=8)
HUGE = st.just("x" * 300_000)


def arguments(names):
    known = st.fixed_dictionaries({}, optional={n: st.one_of(VALUES, NUMBERS, PATHS, HUGE) for n in names})
    extra = st.dictionaries(st.text(min_size=1, max_size=10), VALUES, max_size=2)
    return st.tuples(known, extra).map(lambda pair: {**pair[1], **pair[0]})


@pytest.fixture(scope="module")
def mcp(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(open_workspace(db, slots=2)) as ws:
            with portal.wrap_async_context_manager(Client(build_server(ws))) as client:
                started = portal.call(client.call_tool, "start_run",
                                      {"task": "circle_packing_26", "config": {"num_islands": 1}})
                assert not started.is_error
                yield portal, client, ws


def check(result):
    assert isinstance(result, CallToolResult)
    if result.is_error:
        message = result.content[0].text
        assert message and "Traceback" not in message
        assert not message.startswith("Error executing tool") or ": " in message, message  # never the bare one


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_fuzz_tool_arguments(mcp, tool):
    portal, client, _ = mcp

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arguments(TOOLS[tool]))
    def fuzz(args):
        check(portal.call(client.call_tool, tool, args))

    fuzz()


def test_server_and_archive_survive_the_fuzzing(mcp):
    portal, client, ws = mcp
    assert portal.call(ws.archive.integrity_check) == "ok"
    runs = portal.call(client.call_tool, "list_runs", {})
    assert not runs.is_error and runs.structured_content["runs"][0]["run_id"] == 1
    status = portal.call(client.call_tool, "get_run_status", {"run_id": 1})
    assert not status.is_error and not math.isnan(status.structured_content["best"]["combined_score"])
