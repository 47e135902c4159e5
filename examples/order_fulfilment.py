"""The getting-started workflow: charge, let the payment settle for an hour, ship.

Run it with ``python examples/quickstart.py``, or serve it with a worker::

    tarry --db tarry.db worker examples.order_fulfilment:order &
    tarry --db tarry.db trigger order-fulfilment --payload '{"order_id": "o_1"}'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tarry import RunContext, workflow

log = logging.getLogger("examples.order")


@dataclass
class Order:
    order_id: str
    #: How long the payment settles before shipping (any duration ctx.sleep accepts).
    settle: Any = field(default_factory=lambda: {"amount": 1, "unit": "hours"})


async def charge(order_id: str) -> dict[str, Any]:
    """Stands in for a payment API call (async steps run on the event loop)."""
    log.info("charging %s", order_id)
    return {"charge_id": f"ch_{order_id}", "amount_cents": 4200}


def ship(order_id: str, charge_id: str) -> dict[str, Any]:
    """Stands in for a blocking shipping API (sync steps run in a worker thread)."""
    log.info("shipping %s (paid by %s)", order_id, charge_id)
    return {"tracking": f"TRK-{order_id}"}


@workflow("order-fulfilment", payload=Order)
async def order(ctx: RunContext[Order]) -> dict[str, Any]:
    """Charge the order, wait for the payment to settle, then ship it."""
    charged = await ctx.step("charge", charge, ctx.payload.order_id)
    await ctx.sleep("settle", ctx.payload.settle)
    shipped = await ctx.step("ship", ship, ctx.payload.order_id, charged["charge_id"])
    return {"shipped": True, **shipped}
