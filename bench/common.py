"""What every benchmark case shares: its command line, the common JSON keys, the store, the
commit-rate limit of the file system, RSS and percentiles.

A case runs in its own process (``python -m bench.case WORKLOAD ...``, started by
``python -m bench``) on a fresh database file in ``--dir``, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

import tarry
from tarry import MemoryStore, SQLiteStore, Store

__all__ = [
    "Unavailable",
    "case_parser",
    "common_keys",
    "db_bytes",
    "emit",
    "limit_commits_per_s",
    "make_store",
    "percentile",
    "poll",
    "rss_bytes",
]

#: How many single-row transactions the limit measurement commits.
LIMIT_COMMITS = 2000


class Unavailable(Exception):
    """The case cannot run here yet (say, ``tarry.Client`` does not exist); the message
    says why. ``bench.case`` exits with status 3 and prints no JSON line."""


def case_parser(workload: str, default_n: int, modes: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m bench.case {workload}")
    parser.add_argument("--n", type=int, default=default_n, help=f"runs (default {default_n})")
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL", type=str.upper)
    parser.add_argument("--dir", type=Path, required=True, help="a fresh directory for the database file")
    if modes:
        parser.add_argument("--mode", choices=modes, default=modes[0])
    return parser


def make_store(args: argparse.Namespace, name: str = "tarry.db") -> Store:
    """A fresh store: a SQLite file in ``args.dir`` (WAL, ``args.synchronous``) or memory."""
    if args.store == "memory":
        return MemoryStore()
    return SQLiteStore(args.dir / name, synchronous=args.synchronous)


def common_keys(args: argparse.Namespace, workload: str, *, mode: str | None = None) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "engine": "tarry",
        "version": tarry.__version__,
        "store": args.store,
        "synchronous": args.synchronous,
        "workload": workload,
        "n": args.n,
    }
    if mode is not None:
        keys["mode"] = mode
    return keys


def limit_commits_per_s(directory: Path, synchronous: str, commits: int = LIMIT_COMMITS) -> float:
    """Single-row ``INSERT`` + ``COMMIT`` transactions per second, with the stdlib sqlite3,
    on a new file in ``directory`` (so the same file system), WAL, ``synchronous`` as given:
    the most sequential durable commits per second this machine allows right now."""
    path = directory / "limit.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        start = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return round(commits / elapsed, 1)


def rss_bytes() -> int:
    """This process's resident set size (VmRSS), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def db_bytes(path: Path) -> int:
    """The database file plus its write-ahead log."""
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def poll(predicate: Callable[[], Awaitable[Any]], *, interval: float, timeout: float) -> bool:
    """Await ``predicate()`` every ``interval`` seconds until it is truthy (True) or
    ``timeout`` passes (False). For "the store says so": the engine has no event for that."""
    with trio.move_on_after(timeout):
        while not await predicate():  # noqa: ASYNC110 - polling the store is the point
            await trio.sleep(interval)
        return True
    return False


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def note(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
