"""evomcp's driver against a slow model: are the calls kept in flight, and do evaluations keep up?

    .venv/bin/python bench/slow_model.py                        # 1 s per call, --concurrency 32, 2 slots, 300 candidates
    .venv/bin/python bench/slow_model.py --rate-limit 8         # the endpoint answers 429 above 8 calls in flight

The fake OpenAI-compatible server (evomcp.testing.fake_openai) answers every call after `--delay` seconds with a
valid one-literal change (bench/compare_peers.py's instant model, on the same circle-packing task); with
`--rate-limit N` it answers HTTP 429 with `Retry-After: --retry-after` to any call that would make more than N
in flight. `evomcp run TASK --concurrency C --slots S --budget N` drives the run as a subprocess.

Printed: the peak of calls in flight at the server; candidates/s end to end and in the steady window
(between the 10th and the last evaluation); the wait of a stored candidate for its evaluation (from
`created_at` to `evaluated_at` less `eval_seconds`); 429s answered and the lowest calls-in-flight limit the
driver set (its `rate_limited` events); steps that failed. The issue's target: at least 28 candidates/s with
a 1 s model, 32 calls in flight, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import compare_peers  # bench/compare_peers.py, next to this script: the peers bench's task and instant model
from evomcp.testing.fake_openai import FakeOpenAI, HTTPError


class SlowModel:
    """The instant model behind a delay, counting the calls in flight (and refusing those over a limit)."""

    def __init__(self, delay: float, limit: int | None, retry_after: float):
        self.model = compare_peers.InstantModel(seed=1)
        self.delay, self.limit, self.retry_after = delay, limit, retry_after
        self.lock = threading.Lock()
        self.now = self.peak = self.refused = 0

    def __call__(self, request: dict):
        with self.lock:
            if self.limit is not None and self.now >= self.limit:
                self.refused += 1
                return HTTPError(429, retry_after=self.retry_after)
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.delay)
            return self.model(request)
        finally:
            with self.lock:
                self.now -= 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the model takes per call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N", help="429 above N calls in flight")
    parser.add_argument("--retry-after", type=float, default=0.5, help="the 429's Retry-After, seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evomcp-slow-"))
    task = compare_peers.write_task(work)
    model = SlowModel(args.delay, args.rate_limit, args.retry_after)
    db = work / "archive.db"
    with FakeOpenAI(responder=model) as fake:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "evomcp", "run", str(task), "--model",
             f"name=fake,base_url={fake.base_url},key_env=none,price_in=0,price_out=0,max_retries=0",
             "--no-perturb", "--budget", str(args.candidates), "--concurrency", str(args.concurrency),
             "--slots", str(args.slots), "--db", str(db), "--progress-every", "1000",
             "--config", json.dumps({"novelty": False, "num_islands": 1})],
            capture_output=True, text=True)
        wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"evomcp run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    con = sqlite3.connect(db)
    rows = con.execute("SELECT created_at, evaluated_at, eval_seconds FROM programs WHERE parent_id IS NOT NULL"
                       " AND evaluated_at IS NOT NULL ORDER BY evaluated_at").fetchall()
    failed = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'proposal_failed'").fetchone()[0]
    limits = [json.loads(d)["calls_in_flight_limit"]
              for (d,) in con.execute("SELECT data FROM events WHERE kind = 'rate_limited'")]
    ends = [r[1] for r in rows]
    window = ends[9:] if len(ends) > 20 else ends
    steady = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else float("nan")
    waits = sorted(max(0.0, e - c - (s or 0.0)) for c, e, s in rows)
    print(f"{len(rows)} candidates, model {args.delay:g} s per call, --concurrency {args.concurrency}, "
          f"{args.slots} slots{f', 429 above {args.rate_limit} in flight' if args.rate_limit else ''}")
    print(f"  calls in flight at the server, peak: {model.peak}")
    print(f"  candidates/s end to end: {len(rows) / wall:.1f} (wall {wall:.1f} s); steady: {steady:.1f}")
    print(f"  a stored candidate's wait for its evaluation: median {statistics.median(waits) * 1000:.0f} ms, "
          f"p90 {waits[int(0.9 * (len(waits) - 1))] * 1000:.0f} ms")
    print(f"  429s answered: {model.refused}; lowest calls-in-flight limit set by the driver: "
          f"{min(limits) if limits else '-'}; steps failed: {failed}")


if __name__ == "__main__":
    main()
