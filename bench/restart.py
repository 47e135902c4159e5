"""W6 ``restart``: N (default 100,000) suspended runs in the file (half sleeping 30 days,
half waiting for an event); a fresh worker process's time from its start until it is ready.

Three processes:

1. **setup** (``python -m bench.restart setup``): a passive runtime (no supervisor, so every
   actor lets its run go as soon as it suspends) triggers the N runs through the real
   ``trigger``, up to ``--batch`` at a time (group commit), then one more run that sleeps
   1 s and then runs a step: the due wake-up. Its time is reported on stderr, not measured.
2. This case waits until that wake-up is overdue, notes ``time.time()`` and starts
3. **ready** (``python -m bench.restart ready``): imports the engine, opens the store and
   enters ``async with runtime:`` (recovery: re-drive running runs, load the wheel's window
   of wake-ups, note the next far one, resume waits whose signal is in the inbox), then
   waits until the due run's step has run and committed (the workflow sets an event right
   after ``ctx.step`` returns). ``ready_s`` is the time from just before the process was
   spawned until then, so it includes interpreter start-up and imports; ``rss_bytes`` is
   its VmRSS at that moment. Afterwards (not timed) it checks the store counts N
   suspended runs and the due run completed (``ok``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from tarry import SQLiteStore, create_runtime, workflow

from .common import Unavailable, note, poll, rss_bytes

_T_IMPORTED = time.time()  # (in the ready process) when the engine has been imported

DEFAULT_N = 100_000
MODES = ()
BATCH = 2000
EVENT = "go"
FAR = {"amount": 30, "unit": "days"}
DUE_AFTER_S = 1.0

_served = trio.Event()


async def noop() -> str:
    return "served"


@workflow("bench-restart")
async def parked(ctx: Any) -> str:
    kind = ctx.payload["kind"]
    if kind == "sleep":
        await ctx.sleep("park", FAR)
    elif kind == "event":
        await ctx.wait_for_event("park", EVENT)
    else:
        await ctx.sleep("park", DUE_AFTER_S)
        await ctx.step("served", noop)
        _served.set()
    return str(kind)


# -- 1. setup ----------------------------------------------------------------------------------


async def _setup(path: Path, synchronous: str, n: int, batch: int) -> dict[str, Any]:
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    runtime = create_runtime([parked], store)  # passive: not entered
    start = time.perf_counter()
    suspended = 0

    async def one(i: int) -> None:
        nonlocal suspended
        result = await runtime.trigger(parked, {"kind": "sleep" if i % 2 == 0 else "event"})
        suspended += result.status == "suspended"

    for first in range(0, n, batch):
        async with trio.open_nursery() as nursery:
            for i in range(first, min(first + batch, n)):
                nursery.start_soon(one, i)
    due = await runtime.trigger(parked, {"kind": "due"}, run_id="due")
    elapsed = time.perf_counter() - start
    await runtime.aclose()
    assert due.pending is not None
    return {
        "setup_s": round(elapsed, 2),
        "suspended": suspended + (due.status == "suspended"),
        "due_at": due.pending["wake_at"].timestamp(),
    }


# -- 3. ready ----------------------------------------------------------------------------------


async def _ready(path: Path, synchronous: str, n: int, spawned_at: float) -> dict[str, Any]:
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    runtime = create_runtime([parked], store)
    async with runtime:
        recovered = time.time()
        with trio.move_on_after(60):
            await _served.wait()
        ready = time.time()
        rss = rss_bytes()
        served = _served.is_set()

        async def due_completed() -> bool:
            return (await store.count_by_status()).get("completed", 0) == 1

        if served:
            await poll(due_completed, interval=0.005, timeout=10)
    counts = await store.count_by_status()
    await runtime.aclose()
    return {
        "ok": served and counts == {"suspended": n, "completed": 1},
        "ready_s": round(ready - spawned_at, 4),
        "rss_bytes": rss,
        "imported_s": round(_T_IMPORTED - spawned_at, 4),
        "recovered_s": round(recovered - spawned_at, 4),
    }


# -- 2. the case ---------------------------------------------------------------------------------


def _child(*argv: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.restart", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.restart {argv[0]} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=BATCH, help=f"setup triggers at a time (default {BATCH})")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.store != "sqlite":
        raise Unavailable("a restart needs a durable store (--store sqlite)")
    path = args.dir / "tarry.db"
    common = ["--path", str(path), "--synchronous", args.synchronous, "--n", str(args.n)]
    setup = _child("setup", *common, "--batch", str(args.batch))
    note(f"restart: setup of {args.n} suspended runs through trigger() took {setup['setup_s']} s")
    time.sleep(max(0.0, setup["due_at"] - time.time() + 0.01))  # the due wake-up is overdue
    ready = _child("ready", *common, "--spawned-at", repr(time.time()))
    note(
        f"restart: imports done at {ready.pop('imported_s')} s, "
        f"recovery done at {ready.pop('recovered_s')} s, due run served at {ready['ready_s']} s"
    )
    ready["ok"] = ready["ok"] and setup["suspended"] == args.n + 1
    return ready


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restart")
    parser.add_argument("phase", choices=("setup", "ready"))
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--synchronous", default="NORMAL")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--spawned-at", type=float)
    args = parser.parse_args(argv)
    if args.phase == "setup":
        out = trio.run(_setup, args.path, args.synchronous, args.n, args.batch)
    else:
        out = trio.run(_ready, args.path, args.synchronous, args.n, args.spawned_at)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
