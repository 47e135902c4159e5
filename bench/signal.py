"""W3 ``signal``: one run waits for an event; the latency from the ``signal()`` call until
the step after the wait has completed, its result committed.

The workflow is ``wait_for_event`` then one no-op step; right after ``ctx.step`` returns
(which it does only once the step's result is committed) the workflow code reads
``time.perf_counter()`` and sets a trio event. A sample is that time minus the time just
before ``signal()`` was called. It covers: committing the signal to the inbox, handing it
to the run's (warm) actor, committing the wait's resolution with the signal consumed,
running the step, committing its result. It does not include the run's final commit
(status ``completed``), which follows.

A new run for every sample (triggered and suspended before the clock starts), 1 warm-up
then N samples (default 200), one after another.

- ``same-process``: ``runtime.signal()`` in the process serving the run.
- ``cross-process``: this process serves the database as its worker (``tarry.Worker``,
  default options: a datagram wakes it, ``data_version`` is polled every 20 ms as a
  fallback); the run is triggered here, then a child process (``python -m bench.signal
  send``, one ``tarry.Client`` for all samples) is told the run id through a pipe, reads
  ``time.perf_counter()`` and calls ``client.signal()``. A sample is the time the step
  after the wait committed here minus that time there (``CLOCK_MONOTONIC``: one clock for
  both processes). SQLite only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio

from tarry import create_runtime, workflow

from .client import require_client
from .common import Unavailable, make_store, percentile, poll
from .proc import LineReader, open_child

DEFAULT_N = 200
MODES = ("same-process", "cross-process")
EVENT = "go"
WARMUP = 1

_done: dict[str, trio.Event] = {}
_at: dict[str, float] = {}


async def noop() -> str:
    return "after"


@workflow("bench-signal")
async def wait_then_step(ctx: Any) -> Any:
    payload = await ctx.wait_for_event("wait", EVENT)
    await ctx.step("after", noop)
    _at[ctx.run_id] = time.perf_counter()
    _done[ctx.run_id].set()
    return payload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cross-process", dest="mode", action="store_const", const="cross-process", help="= --mode cross-process"
    )


async def _sample(runtime: Any, i: int, send: Any) -> float | None:
    """Trigger run ``i``, have ``send(run_id, payload)`` signal it and return the time it
    was called; the latency in ms, or None if the run did not go on within 10 s."""
    run_id = f"signal-{i}"
    _done[run_id] = trio.Event()
    result = await runtime.trigger(wait_then_step, run_id=run_id)
    if result.status != "suspended":
        return None
    start = await send(run_id, {"i": i})
    with trio.move_on_after(10):
        await _done[run_id].wait()
    if not _done[run_id].is_set():
        return None
    return (_at[run_id] - start) * 1000


async def _samples(args: argparse.Namespace, store: Any, runtime: Any, send: Any) -> tuple[bool, list[float]]:
    """Warm-up then N samples, and whether every run completed with its own payload."""
    samples: list[float] = []
    for i in range(WARMUP + args.n):
        sample = await _sample(runtime, i, send)
        if sample is None:
            return False, samples
        if i >= WARMUP:
            samples.append(sample)

    async def all_completed() -> bool:
        return (await store.count_by_status()).get("completed", 0) == WARMUP + args.n

    await poll(all_completed, interval=0.005, timeout=10)
    counts = await store.count_by_status()
    runs = await runtime.list_runs(limit=None)
    ok = (
        len(samples) == args.n
        and counts.get("completed") == WARMUP + args.n
        and sum(counts.values()) == WARMUP + args.n
        and all(r.output == {"i": int(r.run_id.split("-")[1])} for r in runs)
    )
    return ok, samples


async def _same_process(args: argparse.Namespace) -> tuple[bool, list[float]]:
    store = make_store(args)
    runtime = create_runtime([wait_then_step], store)

    async def send(run_id: str, payload: Any) -> float:
        start = time.perf_counter()
        await runtime.signal(run_id, EVENT, payload)
        return start

    async with runtime:
        outcome = await _samples(args, store, runtime, send)
    await runtime.aclose()
    return outcome


async def _cross_process(args: argparse.Namespace) -> tuple[bool, list[float]]:
    from tarry import Worker

    store = make_store(args)
    runtime = create_runtime([wait_then_step], store)
    worker = Worker(runtime)
    child = await open_child("signal", "send", "--path", str(store.path))
    assert child.stdin is not None
    assert child.stdout is not None
    replies = LineReader(child.stdout)
    if await replies.readline() != "ready":
        raise RuntimeError("the signalling process did not start")

    async def send(run_id: str, payload: Any) -> float:
        await child.stdin.send_all(f"{run_id} {payload['i']}\n".encode())  # type: ignore[union-attr]
        return float(await replies.readline())

    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            outcome = await _samples(args, store, runtime, send)
        finally:
            await child.stdin.aclose()
            worker.stop(grace=0)
    ok = await child.wait() == 0
    await runtime.aclose()
    return outcome[0] and ok, outcome[1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "cross-process":
        require_client()
        if args.store != "sqlite":
            raise Unavailable("cross-process needs a store another process can open (--store sqlite)")
        ok, samples = trio.run(_cross_process, args)
    else:
        ok, samples = trio.run(_same_process, args)
    return {
        "ok": ok,
        "p50_ms": round(percentile(samples, 0.50), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
    }


# -- the signalling process of --cross-process ---------------------------------------------


def send_main(path: Path) -> int:
    """Read ``run_id i`` lines; for each, note the time, signal the run through a Client and
    write the time noted (one line per signal)."""
    from tarry import Client

    with Client(path) as client:
        print("ready", flush=True)
        for line in sys.stdin:
            run_id, i = line.split()
            start = time.perf_counter()
            client.signal(run_id, EVENT, {"i": int(i)})
            print(repr(start), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.signal")
    parser.add_argument("role", choices=("send",))
    parser.add_argument("--path", type=Path, required=True)
    sys.exit(send_main(parser.parse_args().path))
