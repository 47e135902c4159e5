"""W1 conc and W3 cross-process with 1, 2 and 4 worker processes on one PostgreSQL
database, beside one worker on a SQLite file, in one run.

    python -m bench.workers [--workers 1,2,4] [--n 1000] [--samples 100] [--reps 3]

Not the WORKLOADS.md harness (``python -m bench``), which runs the worker in the measuring
process: here every worker is a real ``tarry worker`` process and every run goes through
``tarry.Client``, as it does with many workers.

- ``steps`` (``mode: conc``): a Client triggers N runs of W1's three-step workflow from 8
  threads; ``wall_s`` runs from the first trigger to the last run's completion (its
  ``updated_at``, committed by whichever worker drove it).
- ``signal`` (``mode: cross-process``): a run waits for "go"; the Client signals it; a
  sample is the time the step after the wait had committed in the worker (``perf_counter``,
  CLOCK_MONOTONIC, shared by the processes) minus the time before ``signal()``.

The PostgreSQL server is a throw-away cluster (tests/pg.py: ``fsync=off`` and
``synchronous_commit=off``, so these figures are the engine's, not the disk's); SQLite runs
with ``synchronous=NORMAL``. One JSON line per measurement, then a table of medians on stderr.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tarry
from tarry import Client

from .common import percentile

ROOT = Path(__file__).resolve().parent.parent


def _start_workers(db: str, k: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(k):
        with open(logs / f"worker{i}.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tarry.cli",
                        "--db",
                        db,
                        "worker",
                        "bench.workers_app",
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _until(predicate: Any, timeout: float = 120.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench.workers: timed out")
        time.sleep(interval)


def _steps(client: Client, n: int) -> dict[str, Any]:
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: client.trigger("bench-steps").run_id, range(n)))
    _until(lambda: client.count(status="completed", workflow_id="bench-steps") >= n)
    runs = client.list_runs(workflow_id="bench-steps", limit=None)
    mine = [r for r in runs if r.run_id in set(ids)]
    ok = len(mine) == n and all(r.status == "completed" and r.output == [0, 1, 2] for r in mine)
    wall = max(r.updated_at.timestamp() for r in mine) - start
    return {"ok": ok, "runs_per_s": round(n / wall, 1), "steps_per_s": round(3 * n / wall, 1), "wall_s": round(wall, 4)}


def _signal(client: Client, samples: int) -> dict[str, Any]:
    latencies = []
    ok = True
    for k in range(samples + 1):  # one warm-up
        run = client.trigger("bench-signal")
        client.wait(run.run_id, timeout=30)
        before = time.perf_counter()
        client.signal(run.run_id, "go")
        done = client.wait(run.run_id, timeout=30)
        ok = ok and done.status == "completed"
        if k and done.output is not None:
            latencies.append((done.output["at"] - before) * 1e3)
    return {
        "ok": ok and len(latencies) == samples,
        "p50_ms": round(percentile(latencies, 0.5), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
    }


def _measure(db: str, store: str, k: int, args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    procs = _start_workers(db, k, logs)
    try:
        with Client(db) as client:
            _until(lambda: client.engine_info().workers_alive == k and len(client.workflows()) == 2, timeout=60)
            base = {"engine": "tarry", "version": tarry.__version__, "store": store, "synchronous": "NORMAL"}
            base["workers"] = k
            steps = {**base, "workload": "steps", "n": args.n, "mode": "conc", **_steps(client, args.n)}
            signal = {**base, "workload": "signal", "n": args.samples, "mode": "cross-process"}
            signal.update(_signal(client, args.samples))
            return [steps, signal]
    finally:
        _stop(procs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts on PostgreSQL (default 1,2,4)")
    parser.add_argument("--n", type=int, default=1000, help="W1 runs per measurement")
    parser.add_argument("--samples", type=int, default=100, help="W3 samples per measurement")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.workers.split(",")]
    sys.path.insert(0, str(ROOT))
    from tests.pg import Unavailable, cluster

    figures: dict[tuple[str, int, str], list[float]] = {}
    try:
        server_cm = cluster()
        server = server_cm.__enter__()
    except Unavailable as exc:
        raise SystemExit(f"bench.workers: no PostgreSQL server: {exc}") from None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            logs = Path(tmp)
            for rep in range(args.reps):  # round-robin, so that a noisy minute does not land on one case
                cases = [("sqlite", 1)] + [("postgres", k) for k in counts]
                for store, k in cases:
                    db = str(logs / f"r{rep}.db") if store == "sqlite" else server.new_database()
                    for line in _measure(db, store, k, args, logs):
                        print(json.dumps(line), flush=True)
                        key = "steps_per_s" if line["workload"] == "steps" else "p50_ms"
                        figures.setdefault((store, k, line["workload"]), []).append(line[key])
                        if line["workload"] == "signal":
                            figures.setdefault((store, k, "p99"), []).append(line["p99_ms"])
                    if store == "sqlite":
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{db}{suffix}").unlink(missing_ok=True)
    finally:
        server_cm.__exit__(None, None, None)
    print("| store | workers | W1 conc steps/s | W3 cross-process p50 ms | p99 ms |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for store, k in [("sqlite", 1)] + [("postgres", k) for k in counts]:
        med = {w: statistics.median(figures[(store, k, w)]) for w in ("steps", "signal", "p99")}
        print(
            f"| {store} | {k} | {med['steps']:,.0f} | {med['signal']:.2f} | {med['p99']:.2f} |",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
