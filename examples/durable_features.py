"""What tarry adds to @visulima/workflow, in one runnable file (the README's examples).

    python examples/durable_features.py      # on ./features.db, in virtual time

Retries with durable backoff, a timeout and a deadline, steps in parallel, a child run,
a wait for one of several events, a patched change and a concurrency limit.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tarry import ChildFailed, NonRetryableError, Retry, SQLiteStore, create_runtime, workflow

# -- the outside world, made up ---------------------------------------------------------------

_flaky = random.Random(7)


async def charge(order_id: str, amount: int) -> dict[str, Any]:
    if amount <= 0:
        raise NonRetryableError(f"cannot charge {amount}")  # no retry helps: fail at once
    if _flaky.random() < 0.5:
        raise ConnectionError("payment gateway unreachable")  # retried, with backoff
    return {"charge_id": f"ch_{order_id}"}


async def reserve(sku: str) -> str:
    await trio.sleep(0.5)
    return f"res_{sku}"


async def fraud_check(order_id: str) -> bool:
    return True


async def fraud_check_v2(order_id: str) -> bool:
    return True


# -- the workflows -------------------------------------------------------------------------


@workflow("invoice")
async def invoice(ctx: Any) -> Any:
    return {"invoice": f"inv_{ctx.payload['order_id']}", "parent": ctx.parent_run_id}


@workflow("order", retry=Retry(max_attempts=3), deadline=7 * 24 * 3600, max_concurrent=10)
async def order(ctx: Any) -> Any:
    order_id = ctx.payload["order_id"]
    charged = await ctx.step(
        "charge",
        charge,
        order_id,
        ctx.payload["amount"],
        retry=Retry(max_attempts=5, backoff=2.0, initial=1, max_delay=60, retry_on=(ConnectionError, OSError)),
        timeout=30,
    )
    if ctx.patched("fraud-v2"):  # runs that were past this point before the change replay the old path
        await ctx.step("fraud-v2", fraud_check_v2, order_id)
    else:
        await ctx.step("fraud", fraud_check, order_id)
    reserved = await ctx.gather(*(ctx.step(f"reserve-{sku}", reserve, sku) for sku in ctx.payload["skus"]))
    try:
        made = await ctx.child("invoice", invoice, {"order_id": order_id})
    except ChildFailed as exc:
        made = {"error": exc.error_message}
    decision = await ctx.wait_for_any("decision", ["approved", "rejected"], timeout={"amount": 2, "unit": "days"})
    if decision is None:
        return {"status": "expired"}
    event, by = decision
    return {"status": event, "by": by, "charge": charged["charge_id"], "reserved": reserved, **made}


async def main(db: str) -> None:
    runtime = create_runtime(workflows=[order, invoice], store=SQLiteStore(db))
    async with runtime:
        run = await runtime.trigger(order, {"order_id": "o_1", "amount": 30, "skus": ["a", "b"]})
        while (info := await runtime.get_run(run.run_id)).status == "running" or (
            info.pending is not None and info.pending["kind"] != "event"
        ):
            await trio.sleep(1)  # retrying, reserving, waiting for the invoice...
        await runtime.signal(run.run_id, "approved", "ann")
        while (info := await runtime.get_run(run.run_id)).status not in ("completed", "failed"):
            await trio.sleep(1)
    print(info.output)
    for entry in info.history:
        print(f"  {entry.seq} {entry.kind:6} {entry.step_id:12} {entry.status:9} attempts={entry.attempts}")
    await runtime.store.close()


if __name__ == "__main__":
    trio.run(
        main, sys.argv[1] if len(sys.argv) > 1 else "features.db", clock=trio.testing.MockClock(autojump_threshold=0.01)
    )
