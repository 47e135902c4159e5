"""Takeover after ``kill -9``: how long a dead worker's work waits for another worker.

    python -m bench.takeover --store sqlite --cycles 10
    python -m bench.takeover --store postgres --cycles 10 [--lease-ttl 2]

Every cycle starts real ``tarry worker bench.takeover_app`` processes with their default
lease (unless ``--lease-ttl``), puts a run mid-step in the first one (a step that would take
an hour), waits a random fraction of a second (so the kill lands anywhere between two
heartbeats), SIGKILLs it and notes ``time.time()``. Then, every 5 ms, it looks for:

- ``sqlite``: a standby worker on the same file (standing by before the kill).
  ``lease_s``: the standby's first write, the lease it took, is visible to a Client
  (``engine_info().worker_pid``); ``serving_s``: its log says "serving" (recovery done);
  ``resumed_s``: the killed step started again in the standby (its own time stamp).
- ``postgres``: a second worker, serving since before the kill, on a throw-away cluster
  (tests/pg.py). ``claimed_s``: its first write for the dead worker's run, the claim, is
  visible (``tarry_runs.owner`` names it); ``resumed_s`` as above.

Times are wall-clock differences between processes of one machine; the 5 ms polling adds
up to 5 ms. One JSON line per cycle, then one ``"summary"`` line with the median and the
maximum of each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tarry import Client

from .proc import ROOT

__all__ = ["main"]

POLL = 0.005


def _worker(db: str, directory: Path, name: str, lease_ttl: float | None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tarry.cli", "--db", db, "worker", "bench.takeover_app", "--grace", "0"]
    if lease_ttl is not None:
        argv += ["--lease-ttl", str(lease_ttl)]
    env = {**os.environ, "TARRY_TAKEOVER_STAMPS": str(directory / "stamps"), "PYTHONPATH": str(ROOT)}
    with open(directory / f"{name}.log", "ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _until(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL)
    raise SystemExit(f"bench.takeover: timed out waiting for {what}")


def _stamps(directory: Path) -> list[tuple[str, int, float]]:
    path = directory / "stamps"
    if not path.exists():
        return []
    return [(r, int(p), float(t)) for r, p, t in (line.split() for line in path.read_text().splitlines())]


def _started_by(directory: Path, run_id: str, pid: int) -> float | None:
    return next((t for r, p, t in _stamps(directory) if r == run_id and p == pid), None)


def _logged(directory: Path, name: str, text: str) -> bool:
    return text in (directory / f"{name}.log").read_text()


def _measure(directory: Path, watch: dict[str, Callable[[], float | None]], killed: float) -> dict[str, float]:
    """Poll every figure's probe until each has a time; returns seconds after the kill."""
    got: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(watch):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.takeover: no takeover within 60s (seen: {got})")
        for name, probe in watch.items():
            if name not in got and (at := probe()) is not None:
                got[name] = round(at - killed, 3)
        time.sleep(POLL)
    return got


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def cycle_sqlite(directory: Path, index: int, rng: random.Random, lease_ttl: float | None) -> dict[str, float]:
    db = str(directory / f"c{index}.db")
    first = _worker(db, directory, f"a{index}", lease_ttl)
    second: subprocess.Popen[bytes] | None = None
    try:
        with Client(db) as client:
            _until(lambda: client.engine_info().worker_pid == first.pid, "the first worker to serve")
            run_id = client.trigger("takeover-hold", {"seconds": 3600}).run_id
            _until(lambda: _started_by(directory, run_id, first.pid), "the step to start")
            second = _worker(db, directory, f"b{index}", lease_ttl)
            _until(lambda: _logged(directory, f"b{index}", "standing by"), "the standby")
            time.sleep(rng.uniform(0, 1.0))
            first.send_signal(signal.SIGKILL)
            killed = time.time()
            first.wait(timeout=30)
            standby = second

            def lease() -> float | None:
                return time.time() if client.engine_info().worker_pid == standby.pid else None

            def serving() -> float | None:
                return time.time() if _logged(directory, f"b{index}", "serving") else None

            return _measure(
                directory,
                {
                    "lease_s": lease,
                    "serving_s": serving,
                    "resumed_s": lambda: _started_by(directory, run_id, standby.pid),
                },
                killed,
            )
    finally:
        for proc in (first, second):
            if proc is not None:
                _kill(proc)


def cycle_postgres(
    directory: Path, index: int, rng: random.Random, lease_ttl: float | None, url: str
) -> dict[str, float]:
    import psycopg

    first = _worker(url, directory, f"a{index}", lease_ttl)
    second: subprocess.Popen[bytes] | None = None
    try:
        _until(lambda: _logged(directory, f"a{index}", "serving"), "the first worker to serve")
        with Client(url) as client:
            run_id = client.trigger("takeover-hold", {"seconds": 3600}).run_id
        _until(lambda: _started_by(directory, run_id, first.pid), "the step to start in the first worker")
        second = _worker(url, directory, f"b{index}", lease_ttl)
        _until(lambda: _logged(directory, f"b{index}", "serving"), "the second worker to serve")
        other = second
        with psycopg.connect(url, autocommit=True) as conn:

            def claimed() -> float | None:
                row = conn.execute("SELECT owner FROM tarry_runs WHERE run_id = %s", (run_id,)).fetchone()
                return time.time() if row and (row[0] or "").split(":")[1:2] == [str(other.pid)] else None

            time.sleep(rng.uniform(0, 1.0))
            first.send_signal(signal.SIGKILL)
            killed = time.time()
            first.wait(timeout=30)
            return _measure(
                directory,
                {"claimed_s": claimed, "resumed_s": lambda: _started_by(directory, run_id, other.pid)},
                killed,
            )
    finally:
        for proc in (first, second):
            if proc is not None:
                _kill(proc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--lease-ttl", type=float, default=None, help="default: the store's")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tarry-takeover-") as tmp:
        directory = Path(tmp)
        server_cm: Any = None
        server: Any = None
        if args.store == "postgres":
            sys.path.insert(0, str(ROOT))
            from tests.pg import Unavailable, cluster

            try:
                server_cm = cluster()
                server = server_cm.__enter__()
            except Unavailable as exc:
                raise SystemExit(f"bench.takeover: no PostgreSQL server: {exc}") from None
        try:
            for index in range(args.cycles):
                if args.store == "sqlite":
                    got = cycle_sqlite(directory, index, rng, args.lease_ttl)
                else:
                    got = cycle_postgres(directory, index, rng, args.lease_ttl, server.new_database())
                print(
                    json.dumps(
                        {
                            "workload": "takeover",
                            "store": args.store,
                            "cycle": index,
                            "lease_ttl": args.lease_ttl,
                            **got,
                        }
                    ),
                    flush=True,
                )
                for name, value in got.items():
                    figures.setdefault(name, []).append(value)
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)
    summary: dict[str, Any] = {"workload": "takeover", "store": args.store, "summary": True, "cycles": args.cycles}
    summary["lease_ttl"] = args.lease_ttl
    for name, values in figures.items():
        summary[f"{name}_median"] = round(statistics.median(values), 3)
        summary[f"{name}_max"] = round(max(values), 3)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
