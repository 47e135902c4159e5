"""Workflows for the observability tests (``tarry worker tests.obs_app:runtime``): a run
that retries a step then fails, one that completes after a short sleep, and application
log lines from inside steps (logger ``obs_app``)."""

from __future__ import annotations

import logging
from typing import Any

from tarry import Retry, create_runtime, workflow

app_log = logging.getLogger("obs_app")


def prepare(order: str) -> str:  # sync: runs in a worker thread
    app_log.info("preparing order %s", order)
    return order


async def charge(order: str) -> str:
    app_log.info("charging order %s", order)
    raise RuntimeError(f"card declined for {order}")


@workflow("declined")
async def declined(ctx: Any) -> Any:
    """Prepares, then tries to charge twice (50 ms apart) and fails."""
    await ctx.step("prepare", prepare, ctx.payload["order"])
    return await ctx.step("charge", charge, ctx.payload["order"], retry=Retry(max_attempts=2, initial=0.05))


@workflow("napper")
async def napper(ctx: Any) -> Any:
    """A step, a 50 ms durable sleep, a step: completes."""
    await ctx.step("before", prepare, "nap")
    await ctx.sleep("nap", 0.05)
    await ctx.step("after", prepare, "nap")
    return "rested"


runtime = create_runtime([declined, napper])
