"""The workflows ``bench.workers`` serves in its worker processes
(``tarry --db URL worker bench.workers_app``)."""

from __future__ import annotations

import time
from typing import Any

from tarry import workflow

from .steps import noop, three_steps  # W1's workflow, as the in-process harness runs it


@workflow("bench-signal")
async def wait_then_step(ctx: Any) -> dict[str, float]:
    """W3's workflow: wait for "go", one step; the output says when that step had committed
    (``time.perf_counter()``: CLOCK_MONOTONIC, one clock for every process of the machine)."""
    await ctx.wait_for_event("wait", "go")
    await ctx.step("after", noop, 0)
    return {"at": time.perf_counter()}


WORKFLOWS = [three_steps, wait_then_step]
