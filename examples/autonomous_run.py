"""Let the server evolve a run by itself with an OpenAI-compatible endpoint, and watch it.

    OPENAI_API_KEY=... python examples/autonomous_run.py --model gpt-4.1-mini --budget 100 --max-cost 2
    python examples/autonomous_run.py --base-url http://127.0.0.1:11434/v1 --model qwen2.5-coder --no-key

The server (`evomcp serve`, over stdio) calls the model itself; this script only starts the run
with a `driver` and polls get_run_status until the driver is done.
"""

import argparse
import asyncio
import os
import sys

from mcp import Client, StdioServerParameters


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="circle_packing_26")
    parser.add_argument("--model", required=True)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--no-key", action="store_true", help="the endpoint needs no API key")
    parser.add_argument("--price-in", type=float, default=0.0, help="USD per million input tokens")
    parser.add_argument("--price-out", type=float, default=0.0, help="USD per million output tokens")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--max-cost", type=float, default=None)
    parser.add_argument("--db", default="autonomous.db")
    args = parser.parse_args()
    model = {"name": args.model, "model": args.model, "base_url": args.base_url,
             "api_key_env": None if args.no_key else "OPENAI_API_KEY",
             "price_in_per_m": args.price_in, "price_out_per_m": args.price_out}
    driver = {"models": [model], "perturb": True, "max_evaluations": args.budget, "concurrency": 2,
              "max_cost_usd": args.max_cost}
    server = StdioServerParameters(command=sys.executable, args=["-m", "evomcp", "serve", "--db", args.db],
                                   env=dict(os.environ))
    async with Client(server) as client:
        result = await client.call_tool("start_run", {"task": args.task, "driver": driver})
        if result.is_error:
            raise SystemExit(result.content[0].text)
        run_id = result.structured_content["run"]["run_id"]
        while True:
            status = (await client.call_tool("get_run_status", {"run_id": run_id})).structured_content
            best = status["best"]["combined_score"] if status["best"] else None
            arms = {k: int(v["pulls"]) for k, v in (status["driver"]["arms"] or {}).items()}
            print(f"evaluated {status['evaluations_finished']:4d}  best {best!r}  cost ${status['cost_usd']:.4f}  arms {arms}")
            if status["driver"]["state"] not in ("running", "stopping"):
                print(f"driver {status['driver']['state']}: {status['driver']['reason']}")
                break
            await asyncio.sleep(2)


if __name__ == "__main__":
    asyncio.run(main())
