"""The @visulima/workflow getting-started, in Python, on a durable SQLite store.

    python examples/quickstart.py          # uses ./tarry.db

Walks through: define, trigger (returns when the run first suspends), sweep, signal,
inspect; then the same with the supervisor running, where nobody calls sweep().
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from examples.order_fulfilment import order
from examples.publish_review import review
from tarry import SQLiteStore, create_runtime


def show(label: str, result: object) -> None:
    print(f"{label:<28} {result}")


async def main(db: str = "tarry.db") -> None:
    # 1-2. A runtime with a durable store, and a run that suspends on its sleep.
    runtime = create_runtime(workflows=[order, review], store=SQLiteStore(db))
    result = await runtime.trigger(order, {"order_id": "o_1", "settle": 1})  # 1 s instead of an hour
    assert result.pending is not None  # it suspended on its sleep
    show("trigger(order):", f"{result.status}, pending {result.pending['kind']} {result.pending['step']!r}")

    # 3. Resume due runs: a cron job would call sweep(); here we wait out the settle time.
    await trio.sleep(1.1)
    for resumed in await runtime.sweep():
        show("sweep():", f"{resumed.run_id[:8]} {resumed.status} -> {resumed.output}")

    # 4. Deliver an external event to a waiting run.
    pending = await runtime.trigger(review, {"article": "hello-tarry"})
    assert pending.pending is not None  # it waits for the decision
    show("trigger(review):", f"{pending.status}, waiting for {pending.pending['event']!r}")
    await runtime.signal(pending.run_id, "review-decision", {"approved": True})

    # 5. Inspect the run: status, output and its journal.
    info = await runtime.get_run(pending.run_id)
    show("get_run(review):", f"{info.status} -> {info.output}")
    for entry in info.history:
        show(f"  {entry.kind} {entry.step_id!r}", f"{entry.status} at {entry.finished_at:%H:%M:%S}")

    # Supervised: the timer wheel wakes the run by itself, no sweep() needed.
    async with runtime:
        result = await runtime.trigger(order, {"order_id": "o_2", "settle": 0.5})
        with trio.fail_after(10):
            while (await runtime.get_run(result.run_id)).status != "completed":
                await trio.sleep(0.05)
        show("served order o_2:", (await runtime.get_run(result.run_id)).output)
    await runtime.aclose()
    print(f"done: runs are in {db}; try `tarry --db {db} runs`")


if __name__ == "__main__":
    trio.run(lambda: main(*sys.argv[1:]))
