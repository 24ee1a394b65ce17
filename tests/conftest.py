import socket
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
