"""Retries, timeouts and deadlines, parallel steps, multi-event waits, versions and child runs,
in one process on every store (virtual time); test_durable_features_restart.py kills real ones."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tarry import (
    ChildFailed,
    Client,
    ConcurrentContextUse,
    NonRetryableError,
    Retry,
    SQLiteStore,
    StepFailed,
    Store,
    create_runtime,
    workflow,
)
from tests.conftest import wait_for


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """These features touch every store's write path (child outcomes, multi-event waits): all three."""
    return str(request.param)


# -- retries -------------------------------------------------------------------------------


async def test_every_failed_attempt_is_journaled_and_non_retryable_stops_at_once(mock_clock: Any, store: Store) -> None:
    calls: list[str] = []
    seen: list[tuple[str, int]] = []

    async def refuse(kind: str) -> str:
        calls.append(kind)
        if kind == "fatal":
            raise NonRetryableError("card declined")
        raise ValueError("not a connection problem")

    @workflow("refuse")
    async def wf(ctx: Any) -> Any:
        try:
            await ctx.step("fatal", refuse, "fatal", retry=Retry(max_attempts=5, initial=0))
        except StepFailed as exc:
            seen.append((exc.error_type, exc.attempts))
        # retry_on: a ValueError is not an OSError, so it is not retried.
        return await ctx.step("other", refuse, "other", retry=Retry(max_attempts=5, initial=0, retry_on=(OSError,)))

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "ValueError"
    assert result.error.step_id == "other"
    assert calls == ["fatal", "other"]
    assert seen == [("NonRetryableError", 1)]


async def test_a_workflow_wide_retry_default_applies_to_its_steps(mock_clock: Any, store: Store) -> None:
    tries: list[int] = []

    async def flaky() -> int:
        tries.append(1)
        if len(tries) < 4:
            raise OSError("later")
        return len(tries)

    @workflow("defaults", retry=Retry(max_attempts=4, initial=1, backoff=1))
    async def wf(ctx: Any) -> Any:
        return await ctx.step("call", flaky)

    runtime = create_runtime(workflows=[wf], store=store)
    async with runtime:
        result = await runtime.trigger(wf, None)
        assert result.status == "suspended"  # in its first backoff
        info = await wait_for(lambda: _ended(runtime, result.run_id), "the run to end")
    assert info.output == 4
    [step] = info.history
    assert step.attempts == 4
    assert [f["attempt"] for f in step.failures] == [1, 2, 3]
    assert all(f["type"] == "OSError" for f in step.failures)


async def test_a_restart_mid_backoff_neither_forgets_nor_repeats_an_attempt(
    mock_clock: Any, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two runtimes in one trio run: the wall clock must move with virtual time, as it does
    # between two real processes.
    base = time.time()

    def wall() -> float:
        try:
            return base + trio.current_time()
        except RuntimeError:  # a store thread: no trio clock there
            return base + mock_clock.current_time()

    monkeypatch.setattr(time, "time", wall)
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ConnectionError("down")
        return "up"

    @workflow("backoff")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("call", flaky, retry=Retry(max_attempts=3, initial=100, backoff=2, max_delay=1000))

    first = create_runtime(workflows=[wf], store=SQLiteStore(db_path))
    async with first:
        result = await first.trigger(wf, None)
        assert result.status == "suspended"
        await trio.sleep(50)  # half-way through the first backoff
    await first.store.close()
    assert len(attempts) == 1

    second = create_runtime(workflows=[wf], store=SQLiteStore(db_path))
    async with second:
        info = await wait_for(lambda: _ended(second, result.run_id), "the run to end", timeout=1000)
    await second.store.close()
    assert info.output == "up"
    assert len(attempts) == 3  # attempt 1 was not repeated, attempts 2 and 3 were not skipped
    assert attempts[1] - attempts[0] == pytest.approx(100, abs=0.5)
    assert attempts[2] - attempts[1] == pytest.approx(200, abs=0.5)
    assert info.history[0].attempts == 3


async def test_a_sync_step_past_its_timeout_is_abandoned_and_retried(mock_clock: Any, store: Store) -> None:
    release = threading.Event()
    tries: list[int] = []

    def blocking() -> str:
        tries.append(1)
        if len(tries) == 1:
            release.wait(10)  # a thread cannot be cancelled: this one is left behind
        return "second try"

    @workflow("abandon")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("call", blocking, timeout=1, retry=Retry(max_attempts=2, initial=0))

    runtime = create_runtime(workflows=[wf], store=store)
    started = time.monotonic()
    result = await runtime.trigger(wf, None)
    release.set()
    assert time.monotonic() - started < 5
    assert result.status == "completed"
    assert result.output == "second try"
    info = await runtime.get_run(result.run_id)
    assert info.history[0].failures[0]["type"] == "TimeoutError"


async def test_a_run_past_its_deadline_fails_even_while_it_sleeps(mock_clock: Any, store: Store) -> None:
    @workflow("slowpoke", deadline=60)
    async def wf(ctx: Any) -> Any:
        await ctx.step("first", _echo, 1)
        await ctx.sleep("long", 3600)
        return "never"

    runtime = create_runtime(workflows=[wf], store=store)
    async with runtime:
        result = await runtime.trigger(wf, None)
        assert result.status == "suspended"
        info = await wait_for(lambda: _ended(runtime, result.run_id), "the deadline", timeout=600)
    assert (info.updated_at - info.created_at).total_seconds() == pytest.approx(60, abs=0.5)
    assert info.status == "failed"
    assert info.error is not None
    assert info.error.type == "DeadlineExceeded"
    assert result.run_id in info.error.message

    # Passive: a sweep after the deadline fails it too, without running it.
    passive = create_runtime(workflows=[wf], store=store)
    await passive.trigger(wf, None)
    await trio.sleep(61)
    [swept] = await passive.sweep()
    assert swept.status == "failed"
    assert swept.error is not None
    assert swept.error.type == "DeadlineExceeded"


# -- parallel steps --------------------------------------------------------------------------


async def test_gather_runs_steps_concurrently_and_returns_results_in_order(mock_clock: Any, store: Store) -> None:
    running: list[str] = []
    overlap: list[int] = []

    async def fetch(name: str, seconds: float) -> str:
        running.append(name)
        overlap.append(len(running))
        await trio.sleep(seconds)
        running.remove(name)
        return name.upper()

    @workflow("fan-out")
    async def wf(ctx: Any) -> Any:
        a, b, c = await ctx.gather(
            ctx.step("a", fetch, "a", 3), ctx.step("b", fetch, "b", 1), ctx.step("c", fetch, "c", 2)
        )
        async with ctx.parallel() as p:
            for i in range(3):
                p.step(f"p{i}", fetch, f"p{i}", 3 - i)
        return [a, b, c, *p.results]

    runtime = create_runtime(workflows=[wf], store=store)
    started = trio.current_time()
    result = await runtime.trigger(wf, None)
    assert result.status == "completed"
    assert result.output == ["A", "B", "C", "P0", "P1", "P2"]
    assert max(overlap) == 3
    assert trio.current_time() - started == pytest.approx(6, abs=0.1)  # 3 + 3, not 12
    info = await runtime.get_run(result.run_id)
    assert [h.step_id for h in info.history] == ["a", "b", "c", "p0", "p1", "p2"]  # the order named, not finished


async def test_one_failure_in_gather_cancels_the_siblings(mock_clock: Any, store: Store) -> None:
    finished: list[str] = []

    async def slow() -> str:
        await trio.sleep(100)
        finished.append("slow")
        return "slow"

    async def boom() -> str:
        await trio.sleep(1)
        raise RuntimeError("boom")

    @workflow("fail-fast")
    async def wf(ctx: Any) -> Any:
        return await ctx.gather(ctx.step("slow", slow), ctx.step("boom", boom))

    runtime = create_runtime(workflows=[wf], store=store)
    started = trio.current_time()
    result = await runtime.trigger(wf, None)
    assert trio.current_time() - started == pytest.approx(1, abs=0.1)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "RuntimeError"
    assert result.error.step_id == "boom"
    assert finished == []
    info = await runtime.get_run(result.run_id)
    assert [(h.step_id, h.status) for h in info.history] == [("boom", "failed")]


async def test_gather_replays_what_committed_and_runs_only_the_rest(mock_clock: Any, store: Store) -> None:
    runs: list[str] = []
    broken = {"b": True}

    async def work(name: str) -> str:
        runs.append(name)
        await trio.sleep(1 if name == "a" else 2)
        if name == "b" and broken["b"]:
            raise ValueError("b is broken")
        return name

    @workflow("partial")
    async def wf(ctx: Any) -> Any:
        return await ctx.gather(ctx.step("a", work, "a"), ctx.step("b", work, "b"))

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    assert result.status == "failed"
    broken["b"] = False
    retried = await runtime.retry(result.run_id)
    assert retried.status == "completed"
    assert retried.output == ["a", "b"]
    assert sorted(runs) == ["a", "b", "b"]  # a's committed result was replayed


async def test_durable_calls_inside_a_gathered_step_are_concurrent_use(mock_clock: Any, store: Store) -> None:
    @workflow("nested")
    async def wf(ctx: Any) -> Any:
        async def inner() -> None:
            await ctx.sleep("nap", 1)

        await ctx.gather(ctx.step("outer", inner))

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == ConcurrentContextUse.code


# -- waiting for any of several events --------------------------------------------------------


async def test_wait_for_any_returns_the_event_and_its_payload(mock_clock: Any, store: Store) -> None:
    @workflow("decide")
    async def wf(ctx: Any) -> Any:
        first = await ctx.wait_for_any("decision", ["approved", "rejected"], timeout=60)
        second = await ctx.wait_for_any("again", ["approved", "rejected"], timeout=60)
        return {"first": first, "second": second}

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    assert result.status == "suspended"
    assert result.pending is not None
    assert result.pending["events"] == ["approved", "rejected"]
    await runtime.signal(result.run_id, "ignored", 0)  # not one of them: stays in the inbox
    await runtime.signal(result.run_id, "rejected", {"by": "ann"})
    await trio.sleep(61)
    [done] = await runtime.sweep()
    assert done.status == "completed"
    assert done.output == {"first": ["rejected", {"by": "ann"}], "second": None}
    info = await runtime.get_run(result.run_id)
    assert [(s.event, s.consumed_by) for s in info.signals] == [("ignored", None), ("rejected", "decision")]


async def test_a_signal_for_a_multi_event_wait_resumes_it_on_sweep(mock_clock: Any, db_path: Path) -> None:
    @workflow("any")
    async def wf(ctx: Any) -> Any:
        return await ctx.wait_for_any("pick", ["left", "right"])

    store = SQLiteStore(db_path)
    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    # Another process's signal: committed to the inbox, found by the next sweep.
    with Client(db_path) as client:
        client.signal(result.run_id, "right", 7)
    [done] = await runtime.sweep()
    assert done.output == ["right", 7]
    await store.close()


# -- versions --------------------------------------------------------------------------------


async def test_patched_lets_old_runs_replay_the_old_path(mock_clock: Any, store: Store) -> None:
    version = {"new": False}
    calls: list[str] = []

    async def check(kind: str) -> str:
        calls.append(kind)
        return kind

    @workflow("order")
    async def wf(ctx: Any) -> Any:
        await ctx.step("charge", check, "charge")
        if version["new"]:
            if ctx.patched("fraud-v2"):
                fraud = await ctx.step("fraud-v2", check, "v2")
            else:
                fraud = await ctx.step("fraud", check, "v1")
        else:
            fraud = await ctx.step("fraud", check, "v1")
        await ctx.wait_for_event("ship", "ship")
        return fraud

    runtime = create_runtime(workflows=[wf], store=store)
    old = await runtime.trigger(wf, None)  # past the fraud check under the old code
    version["new"] = True
    new = await runtime.trigger(wf, None)
    for run in (old, new):
        await runtime.signal(run.run_id, "ship")
    assert (await runtime.get_run(old.run_id)).output == "v1"
    info = await runtime.get_run(new.run_id)
    assert info.output == "v2"
    assert [h.kind for h in info.history] == ["step", "patch", "step", "event"]


async def test_a_replay_that_no_longer_matches_fails_naming_the_step_and_retry_resumes(
    mock_clock: Any, store: Store
) -> None:
    changed = {"first": "one"}

    @workflow("drift")
    async def wf(ctx: Any) -> Any:
        await ctx.step(changed["first"], _echo, 1)
        await ctx.sleep("nap", 10)
        return "ok"

    runtime = create_runtime(workflows=[wf], store=store)
    run = await runtime.trigger(wf, None)
    changed["first"] = "uno"  # deployed while the run sleeps, without ctx.patched
    await trio.sleep(11)
    [failed] = await runtime.sweep()
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "NonDeterminismError"
    assert "step 'one'" in failed.error.message
    assert "'uno'" in failed.error.message
    assert "ctx.patched" in failed.error.message
    changed["first"] = "one"  # the fix
    retried = await runtime.retry(run.run_id)
    assert retried.status == "completed"
    assert retried.output == "ok"


# -- child runs ------------------------------------------------------------------------------


@workflow("invoice")
async def invoice(ctx: Any) -> Any:
    if ctx.payload.get("fail"):
        raise ValueError("no address")
    await ctx.sleep("settle", ctx.payload.get("wait", 0) or 0.001)
    return {"invoice": ctx.payload["order"], "parent": ctx.parent_run_id}


@workflow("order-with-invoice")
async def order(ctx: Any) -> Any:
    try:
        made = await ctx.child("invoice", invoice, ctx.payload)
    except ChildFailed as exc:
        return {"failed": exc.error_message, "child": exc.child_run_id}
    return made


async def test_a_child_run_returns_its_output_to_the_waiting_parent(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order, invoice], store=store)
    async with runtime:
        result = await runtime.trigger(order, {"order": "o-1", "wait": 30})
        assert result.status == "suspended"
        assert result.pending is not None
        assert result.pending["kind"] == "child"
        info = await wait_for(lambda: _ended(runtime, result.run_id), "the parent to end", timeout=100)
    child_id = f"{result.run_id}:invoice"
    assert info.output == {"invoice": "o-1", "parent": result.run_id}
    assert info.children == [child_id]
    child = await runtime.get_run(child_id)
    assert child.status == "completed"
    assert child.parent_run_id == result.run_id
    assert child.workflow_id == "invoice"


async def test_a_failed_child_raises_child_failed_in_the_parent(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order, invoice], store=store)
    result = await runtime.trigger(order, {"order": "o-2", "fail": True})
    assert result.status == "completed"
    assert result.output == {"failed": "no address", "child": f"{result.run_id}:invoice"}


async def test_a_passive_runtime_resumes_the_parent_when_the_child_ends(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order, invoice], store=store)
    result = await runtime.trigger(order, {"order": "o-3", "wait": 10})
    assert result.status == "suspended"
    await trio.sleep(11)
    swept = {r.run_id: r.status for r in await runtime.sweep()}
    swept.update({r.run_id: r.status for r in await runtime.sweep()})
    parent = await runtime.get_run(result.run_id)
    assert parent.status == "completed", swept
    assert parent.output == {"invoice": "o-3", "parent": result.run_id}


async def test_cancelling_the_parent_cancels_its_children(mock_clock: Any, store: Store) -> None:
    @workflow("fire-and-wait")
    async def parent(ctx: Any) -> Any:
        started = await ctx.start_child("background", invoice, {"order": "bg", "wait": 1000})
        await ctx.child("invoice", invoice, {"order": "fg", "wait": 1000})
        return started

    runtime = create_runtime(workflows=[parent, invoice], store=store)
    async with runtime:
        result = await runtime.trigger(parent, None)
        assert result.status == "suspended"
        await runtime.cancel(result.run_id, reason="customer left")
        for child_id in (f"{result.run_id}:background", f"{result.run_id}:invoice"):
            child = await wait_for(lambda c=child_id: _ended(runtime, c), f"{child_id} to end")
            assert child.status == "cancelled"
            assert "customer left" not in (child.cancel_reason or "")
            assert result.run_id in (child.cancel_reason or "")
    assert (await runtime.get_run(result.run_id)).status == "cancelled"


async def test_start_child_returns_the_same_id_on_replay(mock_clock: Any, store: Store) -> None:
    @workflow("starter")
    async def starter(ctx: Any) -> Any:
        child_id = await ctx.start_child("kick", invoice, {"order": "k"})
        await ctx.sleep("nap", 5)
        return child_id

    runtime = create_runtime(workflows=[starter, invoice], store=store)
    result = await runtime.trigger(starter, None)
    await trio.sleep(6)
    results = {r.run_id: r for r in await runtime.sweep()}
    assert results[result.run_id].output == f"{result.run_id}:kick"
    runs = await runtime.list_runs(workflow_id="invoice")
    assert len(runs) == 1


# -- helpers ---------------------------------------------------------------------------------


async def _echo(x: Any) -> Any:
    return x


async def _ended(runtime: Any, run_id: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status in ("completed", "failed", "cancelled") else None


async def test_max_concurrent_runs_at_most_that_many_and_queues_the_rest(mock_clock: Any, store: Store) -> None:
    running: list[str] = []
    peak: list[int] = []

    async def work(name: str) -> str:
        running.append(name)
        peak.append(len(running))
        await trio.sleep(10)
        running.remove(name)
        return name

    @workflow("limited", max_concurrent=2)
    async def limited(ctx: Any) -> Any:
        first = await ctx.step("work", work, ctx.run_id)
        await ctx.sleep("rest", 100)  # a sleeping run gives its place up
        return first

    runtime = create_runtime(workflows=[limited], store=store)
    async with runtime:
        results: list[Any] = []

        async def trigger(i: int) -> None:
            results.append(await runtime.trigger(limited, None, run_id=f"r{i}"))

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(trigger, i)
                await trio.sleep(0.1)
        queued = [r.run_id for r in results if r.pending is not None and r.pending["kind"] == "queued"]
        assert sorted(queued) == ["r2", "r3", "r4"]
        for r in results:
            info = await wait_for(lambda r=r: _ended(runtime, r.run_id), f"{r.run_id} to end", timeout=1000)
            assert info.output == r.run_id
            assert info.pending is None
    assert max(peak) == 2
    assert sorted(set(peak)) == [1, 2]


# -- idempotent trigger and signal -------------------------------------------------------------


async def test_a_repeated_trigger_or_signal_acts_once(mock_clock: Any, store: Store) -> None:
    from tarry import IdempotencyConflict

    @workflow("approve-once")
    async def wf(ctx: Any) -> Any:
        first = await ctx.wait_for_event("first", "go")
        second = await ctx.wait_for_event("second", "go", timeout=10)
        return [first, second]

    runtime = create_runtime(workflows=[wf], store=store)
    run = await runtime.trigger(wf, {"a": 1, "b": 2}, run_id="order-123")
    again = await runtime.trigger(wf, {"b": 2, "a": 1}, run_id="order-123")
    assert again.created_at == run.created_at
    with pytest.raises(IdempotencyConflict) as caught:
        await runtime.trigger(wf, {"a": 2}, run_id="order-123")
    assert "order-123" in str(caught.value)
    assert len(await runtime.list_runs()) == 1

    assert await runtime.signal("order-123", "go", "yes", dedup_key="k") is True
    assert await runtime.signal("order-123", "go", "yes", dedup_key="k") is False
    with pytest.raises(IdempotencyConflict):
        await runtime.signal("order-123", "go", "no", dedup_key="k")
    await trio.sleep(11)
    [done] = await runtime.sweep()
    assert done.output == ["yes", None]  # the repeat did not reach the second wait


# -- retention -------------------------------------------------------------------------------


async def test_prune_deletes_what_ended_long_enough_ago(
    mock_clock: Any, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from tarry import InvalidArgument

    base = time.time()  # the Client reads the wall clock: let it move with virtual time
    monkeypatch.setattr(time, "time", lambda: base + mock_clock.current_time())

    @workflow("quick")
    async def quick(ctx: Any) -> Any:
        if ctx.payload == "wait":
            await ctx.wait_for_event("w", "never")
        return ctx.payload

    store = SQLiteStore(db_path)
    runtime = create_runtime(workflows=[quick], store=store)
    old = await runtime.trigger(quick, "old")
    waiting = await runtime.trigger(quick, "wait")
    await trio.sleep(2 * 86400)
    recent = await runtime.trigger(quick, "recent")
    with pytest.raises(InvalidArgument, match="ended runs only"):
        await runtime.prune(older_than=timedelta(days=1), status="running")
    assert await runtime.prune(older_than=timedelta(days=1)) == 1
    assert {r.run_id for r in await runtime.list_runs()} == {waiting.run_id, recent.run_id}
    await trio.sleep(1)
    with Client(db_path) as client:
        assert client.prune(older_than=0, status=["failed"]) == 0
        assert client.prune(older_than=0) == 1
    assert [r.run_id for r in await runtime.list_runs()] == [waiting.run_id]
    assert old.run_id
    await store.close()


# -- re-run from a step ----------------------------------------------------------------------


async def test_retry_from_a_step_forks_a_new_run_that_keeps_the_journal_before_it(
    mock_clock: Any, store: Store
) -> None:
    from tarry import InvalidArgument, RunNotRetryable

    calls: list[str] = []

    async def act(name: str) -> str:
        calls.append(name)
        return f"{name}-{len(calls)}"

    @workflow("ship-it")
    async def wf(ctx: Any) -> Any:
        charged = await ctx.step("charge", act, "charge")
        await ctx.sleep("settle", 10)
        shipped = await ctx.step("ship", act, "ship")
        return [charged, shipped]

    runtime = create_runtime(workflows=[wf], store=store)
    original = await runtime.trigger(wf, None)
    with pytest.raises(RunNotRetryable, match="cancel it or let it end"):
        await runtime.retry(original.run_id, from_step="ship")
    await trio.sleep(11)
    [done] = await runtime.sweep()
    assert done.output == ["charge-1", "ship-2"]
    with pytest.raises(InvalidArgument, match="'charge', 'settle', 'ship'"):
        await runtime.retry(original.run_id, from_step="deliver")

    forked = await runtime.retry(original.run_id, from_step="ship")
    assert forked.run_id != original.run_id
    assert forked.forked_from == original.run_id
    assert forked.status == "completed"
    assert forked.output == ["charge-1", "ship-3"]  # charge and the sleep replayed, ship ran again
    assert calls == ["charge", "ship", "ship"]
    assert (await runtime.get_run(original.run_id)).output == ["charge-1", "ship-2"]  # untouched

    if isinstance(store, SQLiteStore):  # and from another process's Client
        with Client(store.url) as client:
            again = client.retry(original.run_id, from_step="settle")
            assert again.status == "running"
            assert again.forked_from == original.run_id
            assert [h.step_id for h in client.get_run(again.run_id).history] == ["charge"]
