"""Workflows whose steps use asyncio: ``tarry worker tests.asyncio_app:runtime`` and the
in-process tests of tests/test_asyncio_steps.py.

``TARRY_TEST_EFFECTS`` names a file each step appends a line to (``<run_id> <what>``), so
that a test in another process sees what the asyncio side did, cancellations included.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tarry import Retry, asyncio_step, create_runtime, workflow

from .workflows_cli import record

#: What the asyncio steps of this process saw: (run id, what, the loop they ran on).
seen: list[tuple[str, str, asyncio.AbstractEventLoop | None]] = []


def note(run_id: str, what: str) -> None:
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    seen.append((run_id, what, loop))
    record(run_id, what)


def where() -> dict[str, Any]:
    """Proof of an asyncio loop: a current asyncio task, and the thread it runs in."""
    return {"asyncio_task": asyncio.current_task() is not None, "thread": threading.current_thread().name}


async def fetch(run_id: str, delay: float) -> dict[str, Any]:
    """What an asyncio library does: wait on asyncio (a timer here, a socket in aiohttp)."""
    await asyncio.sleep(delay)
    note(run_id, "fetched")
    return {"fetched": True, **where()}


fetch_on_asyncio = asyncio_step(fetch)


@asyncio_step
async def hang(run_id: str) -> None:
    """Waits on asyncio until cancelled, and notes the cancellation."""
    note(run_id, "hanging")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        note(run_id, "cancelled")
        raise


@workflow("asyncio-fetch")
async def asyncio_fetch(ctx: Any) -> Any:
    first = await ctx.step("fetch", fetch_on_asyncio, ctx.run_id, 0)
    second = await ctx.step("fetch-again", fetch_on_asyncio, ctx.run_id, 0.001)
    return {"first": first, "second": second}


@workflow("asyncio-unmarked")
async def asyncio_unmarked(ctx: Any) -> Any:
    return await ctx.step("fetch", fetch, ctx.run_id, 0.001, retry=Retry(max_attempts=3, initial=0))


@workflow("asyncio-hang")
async def asyncio_hang(ctx: Any) -> Any:
    await ctx.step("hang", hang, ctx.run_id)
    return "not reached"


@workflow("asyncio-approval")
async def asyncio_approval(ctx: Any) -> Any:
    fetched = await ctx.step("fetch", fetch_on_asyncio, ctx.run_id, 0)
    decision = await ctx.wait_for_event("decision", "decision")
    return {"fetched": fetched, "decision": decision}


WORKFLOWS = [asyncio_fetch, asyncio_unmarked, asyncio_hang, asyncio_approval]
runtime = create_runtime(workflows=WORKFLOWS)
