"""Errors keep their type: what leaves ``async with runtime:`` is the error itself, not
the ExceptionGroup of one that trio's strict nurseries wrap it in."""

from __future__ import annotations

import traceback
from typing import Any

from tarry import RunNotFound, Store, WorkflowNotFound, create_runtime, workflow


@workflow("ask")
async def ask(ctx: Any) -> Any:
    return await ctx.wait_for_event("answer", "answer")


async def test_an_error_leaves_async_with_runtime_as_itself(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime([ask], store=store)
    caught: WorkflowNotFound | None = None
    try:
        async with runtime:
            await runtime.trigger("no-such-workflow")
    except WorkflowNotFound as exc:
        caught = exc
    assert caught is not None
    assert caught.workflow_id == "no-such-workflow"
    assert not isinstance(caught.__context__, BaseExceptionGroup)  # no "during handling of the group"

    cause = KeyError("the original")
    raised: Exception | None = None
    try:
        async with runtime:
            try:
                raise cause
            except KeyError as exc:
                raise RunNotFound("r_1") from exc
    except Exception as exc:  # whatever leaves the block (an ExceptionGroup, before) is checked below
        raised = exc
    assert type(raised) is RunNotFound  # not an ExceptionGroup of one
    assert raised.__cause__ is cause
    assert "raise RunNotFound" in "".join(traceback.format_tb(raised.__traceback__))
    # The runtime is usable again afterwards.
    async with runtime:
        assert (await runtime.trigger(ask)).status == "suspended"
