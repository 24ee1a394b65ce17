"""Drive an evomcp run end to end through the `mcp` Python client, over stdio.

    python examples/drive_run.py [--steps 20] [--db /tmp/example.db]

This script plays the part a coding agent would: it samples a parent, writes a change
(here a random nudge of the ring radii, where an agent would read the brief and think),
proposes it and reads the score.
"""

import argparse
import asyncio
import random
import re
import sys

from mcp import Client, StdioServerParameters

RINGS = re.compile(r"rings = \[\(8, ([0-9.]+)\), \(17, ([0-9.]+)\)\]")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--db", default="example.db")
    args = parser.parse_args()
    server = StdioServerParameters(command=sys.executable, args=["-m", "evomcp", "serve", "--db", args.db])
    async with Client(server) as client:
        status = (await client.call_tool("start_run", {"task": "circle_packing_26"})).structured_content
        run_id = status["run"]["run_id"]
        print(f"run {run_id}: seed scores {status['best']['combined_score']!r}")
        for _ in range(args.steps):
            sampled = (await client.call_tool("sample_parent", {"run_id": run_id})).structured_content
            parent = sampled["parent"]
            match = RINGS.search(parent["code"])
            if match is None:
                continue
            inner, outer = (float(g) * (1 + random.gauss(0, 0.05)) for g in match.groups())
            patch = (f"<<<<<<< SEARCH\n    {match.group(0)}\n=======\n"
                     f"    rings = [(8, {inner:.4f}), (17, {outer:.4f})]\n>>>>>>> REPLACE")
            result = await client.call_tool("propose_candidate", {
                "run_id": run_id, "parent_id": parent["id"], "patch": patch, "ticket": sampled["ticket"],
                "description": "nudge ring radii"})
            if result.is_error:
                print("refused:", result.content[0].text)
                continue
            out = result.structured_content
            print(f"program {out['program']['id']}: {out['program']['combined_score']!r}"
                  f"{'  new best' if out['is_new_best'] else ''}")
        best = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content["best"]
        print(f"best: program {best['id']} with {best['combined_score']!r}")


if __name__ == "__main__":
    asyncio.run(main())
