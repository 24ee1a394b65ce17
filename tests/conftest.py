from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client

from evomcp.tools.workspace import open_workspace

DATA = Path(__file__).with_name("data")

RINGS_PATCH = """<<<<<<< SEARCH
    rings = [(8, 0.22), (17, 0.42)]
=======
    rings = [(8, {a}), (17, {b})]
>>>>>>> REPLACE"""


# A real algorithmic change of the circle-packing seed (grow each radius into the gaps): novel, not a near-copy.
GROW_RADII = """<<<<<<< SEARCH
    return radii * (1 - 1e-9)
=======
    for i in range(n):
        gaps = [np.linalg.norm(centers[i] - centers[j]) - radii[j] for j in range(n) if j != i]
        radii[i] = min(radii[i], min(gaps))
    return radii * (1 - 1e-9)
>>>>>>> REPLACE"""


def rings_patch(a: float, b: float) -> str:
    return RINGS_PATCH.format(a=a, b=b)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "archive.db"


@pytest.fixture
async def ws(db_path):
    async with open_workspace(db_path, slots=2) as workspace:
        yield workspace


async def start_driven_run(url: str, **arguments) -> int:
    """Calls start_run over streamable HTTP through the real MCP client; returns the new run's id."""
    async with Client(url) as client:
        result = await client.call_tool("start_run", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content["run"]["run_id"]


async def run_status(url: str, run_id: int) -> dict:
    """get_run_status through a fresh client, as the server may have been restarted since the last call."""
    async with Client(url) as client:
        return (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content


async def poll_run_status(url: str, run_id: int, until: Callable[[dict], bool], *, interval: float,
                          timeout: float | None = None) -> dict:
    """Reads the run's status every `interval` seconds until `until(status)` holds, and returns that status;
    fails after `timeout` seconds if one is given."""
    with anyio.fail_after(timeout):
        while not until(status := await run_status(url, run_id)):
            await anyio.sleep(interval)
    return status


def driver_finished(status: dict) -> bool:
    return status["driver"]["state"] == "finished"
