"""A ``ctx.step(...)`` that is never awaited fails its run instead of being skipped."""

from __future__ import annotations

from typing import Any

from tarry import RunContext, Store, UnawaitedCall, create_runtime, workflow

effects: list[str] = []


async def send_email(to: str) -> str:
    effects.append(f"email:{to}")
    return f"sent to {to}"


async def charge(amount: int) -> int:
    effects.append(f"charge:{amount}")
    return amount


async def test_a_forgotten_await_fails_the_run_naming_the_step(mock_clock: Any, store: Store) -> None:
    effects.clear()

    @workflow("forgetful")
    async def forgetful(ctx: RunContext[Any]) -> str:
        charged = await ctx.step("charge", charge, 5)
        ctx.step("send-email", send_email, "ana@example.com")  # the bug: no await
        return f"charged {charged}"

    runtime = create_runtime(workflows=[forgetful], store=store)
    result = await runtime.trigger(forgetful, None)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "UnawaitedCall"
    assert result.error.code == UnawaitedCall.code
    assert result.error.step_id == "send-email"
    assert "add await" in result.error.message
    assert result.run_id in result.error.message
    # The step never ran and nothing of it was journaled; the awaited one was.
    assert effects == ["charge:5"]
    info = await runtime.get_run(result.run_id)
    assert [entry.step_id for entry in info.history] == ["charge"]


async def test_gathered_and_parallel_steps_are_not_unawaited(mock_clock: Any, store: Store) -> None:
    effects.clear()

    @workflow("fan-out")
    async def fan_out(ctx: RunContext[Any]) -> list[Any]:
        calls = [ctx.step(f"charge-{i}", charge, i) for i in range(3)]
        gathered = await ctx.gather(*calls)
        async with ctx.parallel() as p:
            p.step("email-a", send_email, "a")
            p.step("email-b", send_email, "b")
        later = ctx.step("late", charge, 9)  # made first, awaited after another call
        await ctx.step("between", charge, 8)
        return [*gathered, *p.results, await later]

    runtime = create_runtime(workflows=[fan_out], store=store)
    result = await runtime.trigger(fan_out, None)

    assert result.status == "completed", result.error
    assert result.output == [0, 1, 2, "sent to a", "sent to b", 9]
