"""Small real workflows the dashboard tests drive through a real worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tarry import workflow

#: Flip to True to make ``flaky``'s step succeed (the retry test fixes the "bug").
FIXED = {"charge": False}


async def _review(ctx: Any) -> Any:
    decision = await ctx.wait_for_event("review", "review-decision", timeout={"amount": 2, "unit": "days"})
    if decision and decision.get("approved"):
        await ctx.step("publish", lambda: "published")
        return {"published": True}
    return {"published": False, "decision": decision}


async def _quick(ctx: Any) -> Any:
    return await ctx.step("work", lambda: {"done": (ctx.payload or {}).get("n")})


def _charge() -> str:
    if not FIXED["charge"]:
        raise RuntimeError("card declined")
    return "charged"


async def _flaky(ctx: Any) -> Any:
    return await ctx.step("charge", _charge)


async def _sleepy(ctx: Any) -> Any:
    await ctx.step("prepare", lambda: "ready")
    await ctx.sleep("nap", (ctx.payload or {}).get("seconds", 3600))
    return "woke"


@dataclass
class Order:
    customer: str
    item: str


async def _order(ctx: Any) -> Any:
    return await ctx.step("take", lambda: f"{ctx.payload.customer}: {ctx.payload.item}")


review = workflow("publish", description="Wait for a review decision, then publish.")(_review)
quick = workflow("quick", description="One step.")(_quick)
flaky = workflow("flaky", retry=1)(_flaky)
sleepy = workflow("sleepy")(_sleepy)
order = workflow("order", payload=Order, description="An order: a payload schema.")(_order)

ALL = [review, quick, flaky, sleepy, order]
