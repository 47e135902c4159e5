"""The runtime's verbs and rules, in both driving modes, on both stores."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pydantic
import pytest
import trio

from tarry import (
    DuplicateStepId,
    InvalidArgument,
    InvalidCron,
    InvalidDuration,
    NonDeterminismError,
    NotSerializable,
    PayloadValidationError,
    Retry,
    RunAlreadyExists,
    RunFinished,
    RunNotFound,
    RunNotRetryable,
    StepFailed,
    Store,
    WorkflowError,
    WorkflowNotFound,
    create_runtime,
    workflow,
)
from tarry.journal import new_run_id

from .conftest import wait_for


class Order(pydantic.BaseModel):
    order_id: str
    amount: int = 1


calls: list[str] = []


async def charge(order_id: str) -> dict[str, Any]:
    calls.append(f"charge:{order_id}")
    return {"charged": order_id}


def ship(order_id: str) -> dict[str, Any]:  # sync: runs in a worker thread
    calls.append(f"ship:{order_id}")
    return {"shipped": order_id}


@workflow("order-fulfilment", payload=Order)
async def order(ctx: Any) -> dict[str, Any]:
    charged = await ctx.step("charge", charge, ctx.payload.order_id)
    await ctx.sleep("settle", {"amount": 1, "unit": "hours"})
    shipped = await ctx.step("ship", ship, ctx.payload.order_id)
    return {**charged, **shipped}


async def _review(ctx: Any) -> Any:
    decision = await ctx.wait_for_event("review", "review-decision", timeout={"amount": 2, "unit": "days"})
    if decision and decision.get("approved"):
        await ctx.step("publish", lambda: "published")
    return {"decision": decision}


review = workflow("publish")(_review)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


# -- passive mode (no supervisor): trigger / sweep / signal drive inline ---------------------


async def test_trigger_runs_until_first_suspension(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    before = datetime.now(UTC)
    result = await runtime.trigger(order, {"order_id": "o_1"})
    assert result.status == "suspended"
    assert result.workflow_id == "order-fulfilment"
    assert result.pending is not None
    assert result.pending["kind"] == "sleep"
    assert result.pending["step"] == "settle"
    assert result.pending["wake_at"] - before >= timedelta(hours=1) - timedelta(seconds=1)
    assert calls == ["charge:o_1"]


def test_new_run_ids_are_uuid7_ordered_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = []
    for ms in (1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000):
        monkeypatch.setattr("time.time_ns", lambda ms=ms: ms * 1_000_000 + 999)
        ids.append(new_run_id())
    for run_id in ids:
        parsed = uuid.UUID(run_id)
        assert run_id == parsed.hex  # 32 lowercase hex digits
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert ids[0][:12] == ids[1][:12] == f"{1_700_000_000_000:012x}"
    assert ids[0] != ids[1]  # same millisecond, other random bits
    assert ids[1] < ids[2] < ids[3]


async def test_trigger_without_run_id_makes_a_uuid7(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    result = await runtime.trigger(order, {"order_id": "o_1"})
    assert uuid.UUID(result.run_id).version == 7


async def test_sweep_resumes_due_runs_only(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    result = await runtime.trigger("order-fulfilment", {"order_id": "o_1"})
    assert await runtime.sweep() == []  # not due yet
    await trio.sleep(3601)
    resumed = await runtime.sweep()
    assert [(r.run_id, r.status) for r in resumed] == [(result.run_id, "completed")]
    assert resumed[0].output == {"charged": "o_1", "shipped": "o_1"}
    assert calls == ["charge:o_1", "ship:o_1"]  # the charge step was not run again on replay


async def test_signal_resumes_waiting_run_inline(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    result = await runtime.trigger(review, {})
    assert result.pending is not None
    assert result.pending["kind"] == "event"
    assert result.pending["event"] == "review-decision"
    await runtime.signal(result.run_id, "review-decision", {"approved": True})
    info = await runtime.get_run(result.run_id)
    assert info.status == "completed"
    assert info.output == {"decision": {"approved": True}}
    assert [h.step_id for h in info.history] == ["review", "publish"]
    assert info.signals[0].consumed_by == "review"
    assert info.signals[0].consumed_at is not None


async def test_wait_for_event_times_out_with_none(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    result = await runtime.trigger(review, {})
    await trio.sleep(2 * 86400 + 1)
    [resumed] = await runtime.sweep()
    assert resumed.run_id == result.run_id
    assert resumed.status == "completed"
    assert resumed.output == {"decision": None}
    info = await runtime.get_run(result.run_id)
    assert info.history[0].detail["timed_out"] is True


async def test_signal_sent_before_wait_is_kept_and_consumed(mock_clock: Any, store: Store) -> None:
    @workflow("early")
    async def early(ctx: Any) -> Any:
        await ctx.sleep("first", 60)
        return await ctx.wait_for_event("wait", "go")

    runtime = create_runtime(workflows=[early], store=store)
    result = await runtime.trigger(early, None)
    await runtime.signal(result.run_id, "go", {"n": 1})  # arrives while it sleeps
    await runtime.signal(result.run_id, "go", {"n": 2})
    await trio.sleep(61)
    [resumed] = await runtime.sweep()
    assert resumed.status == "completed"
    assert resumed.output == {"n": 1}  # oldest first
    info = await runtime.get_run(result.run_id)
    assert [(s.payload, s.consumed_by) for s in info.signals] == [({"n": 1}, "wait"), ({"n": 2}, None)]


async def test_sweep_resumes_a_wait_whose_signal_is_already_in_the_inbox(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    result = await runtime.trigger(review, {})
    # A signal written by another process lands in the inbox without driving the run.
    await store.add_signal(result.run_id, "review-decision", '{"approved": false}', runtime.now())
    [resumed] = await runtime.sweep()
    assert resumed.status == "completed"
    assert resumed.output == {"decision": {"approved": False}}


async def test_get_run_reports_everything(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    result = await runtime.trigger(order, {"order_id": "o_9"})
    info = await runtime.get_run(result.run_id)
    assert info.run_id == result.run_id
    assert info.workflow_id == "order-fulfilment"
    assert info.status == "suspended"
    assert info.payload == {"order_id": "o_9", "amount": 1}
    assert info.output is None
    assert info.error is None
    assert info.pending == result.pending
    charge_entry, settle_entry = info.history
    assert (charge_entry.step_id, charge_entry.kind, charge_entry.status) == ("charge", "step", "completed")
    assert charge_entry.output == {"charged": "o_9"}
    assert charge_entry.attempts == 1
    assert charge_entry.finished_at is not None
    assert charge_entry.finished_at >= charge_entry.started_at
    assert (settle_entry.kind, settle_entry.status) == ("sleep", "waiting")
    assert info.created_at <= info.updated_at
    data = info.to_dict()
    assert data["history"][0]["step_id"] == "charge"
    assert isinstance(data["created_at"], str)
    assert isinstance(data["pending"]["wake_at"], str)
    import json

    json.dumps(data)  # JSON-ready


async def test_list_runs_filters(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order, review], store=store)
    a = await runtime.trigger(order, {"order_id": "a"})
    b = await runtime.trigger(review, {})
    await runtime.signal(b.run_id, "review-decision", {"approved": False})
    assert {r.run_id for r in await runtime.list_runs()} == {a.run_id, b.run_id}
    assert [r.run_id for r in await runtime.list_runs(status="completed")] == [b.run_id]
    assert [r.run_id for r in await runtime.list_runs(workflow_id="order-fulfilment")] == [a.run_id]
    assert len(await runtime.list_runs(limit=1)) == 1
    assert {r.run_id for r in await runtime.list_runs(status=["completed", "suspended"])} == {a.run_id, b.run_id}
    with pytest.raises(InvalidArgument, match="unknown status 'done'"):
        await runtime.list_runs(status="done")


async def test_ctx_now_uuid_and_idempotency_key_replay_identically(mock_clock: Any, store: Store) -> None:
    seen: list[Any] = []

    @workflow("recorded")
    async def recorded(ctx: Any) -> Any:
        now = await ctx.now()
        ident = await ctx.uuid()
        seen.append((now, ident, ctx.idempotency_key("pay"), ctx.run_id, ctx.workflow_id))
        await ctx.sleep("nap", timedelta(minutes=5))
        return {"now": now.isoformat(), "id": ident}

    runtime = create_runtime(workflows=[recorded], store=store)
    result = await runtime.trigger(recorded, None)
    await trio.sleep(301)
    [done] = await runtime.sweep()
    assert done.status == "completed"
    assert seen[0] == seen[1]  # the replay saw the same instant and uuid
    assert seen[0][2] == f"{result.run_id}:pay"
    assert seen[0][3:] == (result.run_id, "recorded")


async def test_retries_with_backoff_then_succeeds(mock_clock: Any, store: Store) -> None:
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ConnectionError(f"try again {len(attempts)}")
        return "ok"

    @workflow("flaky")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("call", flaky, retry=Retry(max_attempts=3, initial=10, backoff=3))

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    # Passive: the backoff is a durable suspension, resumed by sweep() once due.
    assert result.status == "suspended"
    assert result.pending is not None
    assert result.pending["kind"] == "retry"
    info = await runtime.get_run(result.run_id)
    assert info.history[0].status == "retrying"
    assert await runtime.sweep() == []  # not due yet
    await trio.sleep(10)
    [again] = await runtime.sweep()
    assert again.status == "suspended"
    await trio.sleep(30)
    [done] = await runtime.sweep()
    assert done.status == "completed"
    assert done.output == "ok"
    assert attempts[1] - attempts[0] == pytest.approx(10, abs=0.1)
    assert attempts[2] - attempts[1] == pytest.approx(30, abs=0.1)
    info = await runtime.get_run(result.run_id)
    assert info.history[0].attempts == 3
    assert [f["message"] for f in info.history[0].failures] == ["try again 1", "try again 2"]


async def test_step_failure_fails_run_with_original_error_and_retry_redrives(mock_clock: Any, store: Store) -> None:
    broken = {"on": True}

    async def fragile(x: int) -> int:
        if broken["on"]:
            raise ValueError(f"bad value {x}")
        return x * 2

    @workflow("fragile")
    async def wf(ctx: Any) -> Any:
        first = await ctx.step("first", charge, "f")
        doubled = await ctx.step("double", fragile, 21)
        return {"first": first, "doubled": doubled}

    runtime = create_runtime(workflows=[wf], store=store)
    result = await runtime.trigger(wf, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "ValueError"
    assert result.error.message == "bad value 21"
    assert result.error.step_id == "double"
    assert "ValueError: bad value 21" in result.error.traceback
    info = await runtime.get_run(result.run_id)
    assert info.history[1].status == "failed"
    assert info.history[1].error is not None
    with pytest.raises(RunNotRetryable):
        await runtime.retry((await runtime.trigger(order, {"order_id": "x"})).run_id)
    broken["on"] = False
    retried = await runtime.retry(result.run_id)
    assert retried.status == "completed"
    assert retried.output == {"first": {"charged": "f"}, "doubled": 42}
    assert calls.count("charge:f") == 1  # the completed step was not run again
    info = await runtime.get_run(result.run_id)
    assert info.attempt == 2
    assert [h.status for h in info.history] == ["completed", "completed"]


async def test_a_caught_step_failure_is_replayed_as_the_same_failure(mock_clock: Any, store: Store) -> None:
    async def boom() -> None:
        raise KeyError("missing")

    @workflow("catches")
    async def wf(ctx: Any) -> Any:
        try:
            await ctx.step("boom", boom)
        except StepFailed as exc:
            caught = exc.error_type
        await ctx.sleep("later", 10)
        return caught

    runtime = create_runtime(workflows=[wf], store=store)
    await runtime.trigger(wf, None)
    await trio.sleep(11)
    [done] = await runtime.sweep()
    assert done.status == "completed"
    assert done.output == "KeyError"


async def test_cancel_a_suspended_run(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    result = await runtime.trigger(order, {"order_id": "c"})
    cancelled = await runtime.cancel(result.run_id, reason="customer changed their mind")
    assert cancelled.status == "cancelled"
    assert cancelled.pending is None
    info = await runtime.get_run(result.run_id)
    assert info.cancel_reason == "customer changed their mind"
    await trio.sleep(3601)
    assert await runtime.sweep() == []
    with pytest.raises(RunFinished, match="already ended"):
        await runtime.cancel(result.run_id)
    with pytest.raises(RunFinished):
        await runtime.signal(result.run_id, "anything")


async def test_trigger_with_run_id_is_idempotent(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order, review], store=store)
    first = await runtime.trigger(order, {"order_id": "i"}, run_id="order-i")
    again = await runtime.trigger(order, {"order_id": "i"}, run_id="order-i")
    assert first.run_id == again.run_id == "order-i"
    assert again.status == "suspended"
    assert calls == ["charge:i"]
    with pytest.raises(RunAlreadyExists, match="order-fulfilment"):
        await runtime.trigger(review, {}, run_id="order-i")


async def test_register_later_and_trigger_by_id(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(store=store)
    with pytest.raises(WorkflowNotFound, match="'publish'"):
        await runtime.trigger("publish", {})
    runtime.register(review)
    result = await runtime.trigger("publish", {})
    assert result.status == "suspended"
    with pytest.raises(InvalidArgument, match="already registered"):
        runtime.register(workflow("publish")(_review))


# -- bad input: a typed error, nothing written ------------------------------------------------


async def test_invalid_payload_names_fields_and_writes_nothing(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    with pytest.raises(PayloadValidationError) as caught:
        await runtime.trigger(order, {"amount": "lots"})
    err = caught.value
    assert err.code == "payload_invalid"
    assert err.workflow_id == "order-fulfilment"
    assert {e["field"] for e in err.errors} == {"order_id", "amount"}
    assert "order_id" in str(err)
    assert await runtime.list_runs() == []


async def test_payload_schemas_dataclass_and_callable(mock_clock: Any, store: Store) -> None:
    @dataclasses.dataclass
    class Ticket:
        title: str
        priority: int = 3

    def positive(value: Any) -> int:
        if not isinstance(value, int) or value <= 0:
            raise ValueError("must be a positive int")
        return value

    @workflow("ticket", payload=Ticket)
    async def ticket(ctx: Any) -> Any:
        assert isinstance(ctx.payload, Ticket)
        return {"title": ctx.payload.title, "priority": ctx.payload.priority}

    @workflow("count", payload=positive)
    async def count(ctx: Any) -> Any:
        return ctx.payload + 1

    runtime = create_runtime(workflows=[ticket, count], store=store)
    assert (await runtime.trigger(ticket, {"title": "t"})).output == {"title": "t", "priority": 3}
    assert (await runtime.trigger(count, 41)).output == 42
    with pytest.raises(PayloadValidationError, match="must be a positive int"):
        await runtime.trigger(count, -1)
    with pytest.raises(PayloadValidationError) as caught:
        await runtime.trigger(ticket, {"priority": "high"})
    assert {e["field"] for e in caught.value.errors} == {"title", "priority"}
    assert len(await runtime.list_runs()) == 2


async def test_unknown_run_errors(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    for call in (
        runtime.signal("nope", "x"),
        runtime.get_run("nope"),
        runtime.cancel("nope"),
        runtime.retry("nope"),
    ):
        with pytest.raises(RunNotFound, match="'nope'") as caught:
            await call
        assert caught.value.run_id == "nope"


async def test_signal_to_finished_run_is_an_error_and_stores_nothing(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    result = await runtime.trigger(review, {})
    await runtime.signal(result.run_id, "review-decision", {"approved": False})
    with pytest.raises(RunFinished, match="completed") as caught:
        await runtime.signal(result.run_id, "review-decision", {"approved": True})
    assert caught.value.status == "completed"
    assert len((await runtime.get_run(result.run_id)).signals) == 1


async def test_bad_signal_arguments(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    result = await runtime.trigger(review, {})
    with pytest.raises(InvalidArgument, match="event name"):
        await runtime.signal(result.run_id, "", {})
    with pytest.raises(NotSerializable, match="signal payload"):
        await runtime.signal(result.run_id, "review-decision", {"when": {1, 2}})
    assert (await runtime.get_run(result.run_id)).signals == []


async def test_duplicate_step_id_fails_the_run(mock_clock: Any, store: Store) -> None:
    @workflow("dupes")
    async def dupes(ctx: Any) -> Any:
        for _ in range(2):
            await ctx.step("same", charge, "d")

    runtime = create_runtime(workflows=[dupes], store=store)
    result = await runtime.trigger(dupes, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "DuplicateStepId"
    assert result.error.code == DuplicateStepId.code
    assert result.error.step_id == "same"
    assert "used twice" in result.error.message


async def test_duplicate_step_id_fails_even_if_the_workflow_catches_it(mock_clock: Any, store: Store) -> None:
    @workflow("swallows")
    async def swallows(ctx: Any) -> Any:
        await ctx.step("a", charge, "1")
        with contextlib.suppress(WorkflowError):
            await ctx.step("a", charge, "2")
        return "fine?"

    runtime = create_runtime(workflows=[swallows], store=store)
    result = await runtime.trigger(swallows, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "DuplicateStepId"


async def test_changed_code_is_detected_on_replay_and_retry_after_fix(mock_clock: Any, store: Store) -> None:
    version = {"v": 1}

    @workflow("evolving")
    async def evolving(ctx: Any) -> Any:
        await ctx.step("one", charge, "e")
        await ctx.sleep("wait", 60)
        if version["v"] == 2:
            await ctx.step("inserted", charge, "new")  # a step the journal never saw before "two"
        await ctx.step("two", charge, "e2")
        return "done"

    runtime = create_runtime(workflows=[evolving], store=store)
    result = await runtime.trigger(evolving, None)
    await runtime.signal(result.run_id, "unrelated")  # noise in the inbox does not matter
    await trio.sleep(61)
    [done] = await runtime.sweep()
    assert done.status == "completed"

    # Now a run that is mid-way when the code changes in a way the journal contradicts.
    @workflow("renamed")
    async def renamed(ctx: Any) -> Any:
        name = "charge" if version["v"] == 1 else "charge-v2"
        await ctx.step(name, charge, "r")
        await ctx.sleep("wait", 60)
        return "ok"

    runtime.register(renamed)
    version["v"] = 1
    run = await runtime.trigger(renamed, None)
    version["v"] = 2
    await trio.sleep(61)
    [failed] = await runtime.sweep()
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "NonDeterminismError"
    assert failed.error.code == NonDeterminismError.code
    assert "step 'charge'" in failed.error.message
    assert "step 'charge-v2'" in failed.error.message
    assert "deterministic" in failed.error.message
    version["v"] = 1  # the fix
    retried = await runtime.retry(run.run_id)
    assert retried.status == "completed"


async def test_step_output_not_serialisable_names_step_and_type(mock_clock: Any, store: Store) -> None:
    class Opaque:
        pass

    @workflow("opaque")
    async def opaque(ctx: Any) -> Any:
        await ctx.step("make", lambda: Opaque())

    runtime = create_runtime(workflows=[opaque], store=store)
    result = await runtime.trigger(opaque, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "NotSerializable"
    assert result.error.step_id == "make"
    assert "Opaque" in result.error.message
    assert "step 'make'" in result.error.message
    assert (await runtime.get_run(result.run_id)).history == []  # nothing half-written


@pytest.mark.parametrize(
    ("spec", "error", "text"),
    [
        (-5, InvalidDuration, "negative"),
        ({"amount": 3, "unit": "fortnights"}, InvalidDuration, "fortnights"),
        ("soon", InvalidDuration, "soon"),
        ({"cron": "not a cron"}, InvalidCron, "not a cron"),
        ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, InvalidCron, "Mars/Olympus"),
    ],
)
async def test_invalid_durations_fail_the_run_with_a_typed_error(
    mock_clock: Any, store: Store, spec: Any, error: type[Exception], text: str
) -> None:
    @workflow("sleepy")
    async def sleepy(ctx: Any) -> Any:
        await ctx.sleep("nap", spec)

    runtime = create_runtime(workflows=[sleepy], store=store)
    result = await runtime.trigger(sleepy, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == error.__name__
    assert text in result.error.message
    assert "nap" in result.error.message


async def test_workflow_exception_is_recorded_with_traceback(mock_clock: Any, store: Store) -> None:
    @workflow("raises")
    async def raises(ctx: Any) -> Any:
        await ctx.step("ok", charge, "z")
        raise RuntimeError("the workflow itself broke")

    runtime = create_runtime(workflows=[raises], store=store)
    result = await runtime.trigger(raises, None)
    assert result.status == "failed"
    info = await runtime.get_run(result.run_id)
    assert info.error is not None
    assert info.error.type == "RuntimeError"
    assert info.error.message == "the workflow itself broke"
    assert 'raise RuntimeError("the workflow itself broke")' in info.error.traceback


async def test_definition_errors() -> None:
    def not_async(ctx: Any) -> None:
        pass

    with pytest.raises(InvalidArgument, match="async def"):
        workflow("sync")(not_async)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="non-empty"):
        workflow("")(_review)
    with pytest.raises(InvalidArgument):
        workflow("bad-schema", payload=42)(_review)
    with pytest.raises(InvalidArgument, match="max_attempts"):
        Retry(max_attempts=0)


# -- actor mode: the supervisor and the timer wheel drive runs by themselves ------------------


async def test_serving_wakes_sleepers_without_sweep(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[order], store=store)
    async with runtime:
        result = await runtime.trigger(order, {"order_id": "s"})
        assert result.status == "suspended"
        start = trio.current_time()
        info = await wait_for(lambda: _completed(runtime, result.run_id), "the run to complete", timeout=4 * 3600)
        assert trio.current_time() - start >= 3600 - 1
        assert info.output == {"charged": "s", "shipped": "s"}


async def _completed(runtime: Any, run_id: str) -> Any:
    info = await runtime.get_run(run_id)
    return info if info.status == "completed" else None


async def test_serving_signal_reaches_warm_and_passivated_runs(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store, passivate_after=10)
    async with runtime:
        warm = await runtime.trigger(review, {})
        cold = await runtime.trigger(review, {})
        await runtime.signal(warm.run_id, "review-decision", {"approved": True})
        await wait_for(lambda: _completed(runtime, warm.run_id), "the warm run")
        await trio.sleep(60)  # long past passivate_after: the second run's actor is gone
        assert cold.run_id not in runtime._actors
        await runtime.signal(cold.run_id, "review-decision", {"approved": False})
        info = await wait_for(lambda: _completed(runtime, cold.run_id), "the passivated run")
        assert info.output == {"decision": {"approved": False}}


async def test_serving_times_out_waits(mock_clock: Any, store: Store) -> None:
    runtime = create_runtime(workflows=[review], store=store)
    async with runtime:
        result = await runtime.trigger(review, {})
        info = await wait_for(lambda: _completed(runtime, result.run_id), "the timeout", timeout=3 * 86400)
        assert info.output == {"decision": None}


async def test_serving_cancel_interrupts_a_running_step(mock_clock: Any, store: Store) -> None:
    started = trio.Event()

    async def slow() -> None:
        started.set()
        await trio.sleep(10_000)

    @workflow("slow")
    async def wf(ctx: Any) -> Any:
        await ctx.step("slow", slow)

    runtime = create_runtime(workflows=[wf], store=store)
    async with runtime:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(runtime.trigger, wf, None, run_id="slow-1"))
            await started.wait()
            result = await runtime.cancel("slow-1", reason="too slow")
        assert result.status == "cancelled"
        info = await runtime.get_run("slow-1")
        assert info.cancel_reason == "too slow"
        assert info.history == []


async def test_one_failing_or_hanging_run_does_not_affect_others(mock_clock: Any, store: Store) -> None:
    async def hang() -> None:
        await trio.sleep_forever()

    @workflow("hangs")
    async def hangs(ctx: Any) -> Any:
        await ctx.step("forever", hang)

    @workflow("crashes")
    async def crashes(ctx: Any) -> Any:
        raise ZeroDivisionError("boom")

    runtime = create_runtime(workflows=[hangs, crashes, order], store=store)
    async with runtime, trio.open_nursery() as nursery:
        nursery.start_soon(runtime.trigger, hangs, None)
        crashed = await runtime.trigger(crashes, None)
        assert crashed.status == "failed"
        ok = await runtime.trigger(order, {"order_id": "fine"})
        await wait_for(lambda: _completed(runtime, ok.run_id), "the healthy run", timeout=7200)
        nursery.cancel_scope.cancel()


async def test_many_concurrent_runs_complete(mock_clock: Any, store: Store) -> None:
    @workflow("three")
    async def three(ctx: Any) -> Any:
        for k in range(3):
            await ctx.step(f"s{k}", _noop, k)
        return "done"

    runtime = create_runtime(workflows=[three], store=store)
    async with runtime:
        results: list[Any] = []

        async def one(i: int) -> None:
            results.append(await runtime.trigger(three, None, run_id=f"r{i}"))

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
    assert len(results) == 200
    assert {r.status for r in results} == {"completed"}
    info = await runtime.get_run("r7")
    assert [h.output for h in info.history] == [{"i": 0}, {"i": 1}, {"i": 2}]


async def _noop(k: int) -> dict[str, int]:
    return {"i": k}


async def test_leaving_the_runtime_keeps_runs_for_the_next_one(mock_clock: Any, make_store: Any) -> None:
    first = create_runtime(workflows=[order], store=make_store())
    async with first:
        result = await first.trigger(order, {"order_id": "next"})
    await first.aclose()
    second = create_runtime(workflows=[order], store=make_store())
    async with second:
        info = await wait_for(lambda: _completed(second, result.run_id), "recovery", timeout=7200)
        assert info.output == {"charged": "next", "shipped": "next"}
    assert calls == ["charge:next", "ship:next"]


async def test_serving_cron_sleep(mock_clock: Any, store: Store) -> None:
    fired: list[datetime] = []

    @workflow("daily")
    async def daily(ctx: Any) -> Any:
        await ctx.sleep("nine", {"cron": "0 9 * * *", "tz": "Europe/Berlin"})
        fired.append(await ctx.now())

    runtime = create_runtime(workflows=[daily], store=store)
    async with runtime:
        result = await runtime.trigger(daily, None)
        assert result.pending is not None
        wake_at = result.pending["wake_at"]
        assert wake_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).hour == 9
        await wait_for(lambda: _completed(runtime, result.run_id), "9 o'clock", timeout=2 * 86400)
    assert fired[0] >= wake_at


async def test_msgspec_payload(mock_clock: Any, store: Store) -> None:
    import msgspec

    class Invoice(msgspec.Struct):
        number: str
        total: float

    @workflow("invoice", payload=Invoice)
    async def invoice(ctx: Any) -> Any:
        assert isinstance(ctx.payload, Invoice)
        await ctx.sleep("wait", 5)
        return {"number": ctx.payload.number, "total": ctx.payload.total}

    runtime = create_runtime(workflows=[invoice], store=store)
    result = await runtime.trigger(invoice, {"number": "F-1", "total": 9.5})
    await trio.sleep(6)
    [done] = await runtime.sweep()  # the replay validates the stored JSON into an Invoice again
    assert done.output == {"number": "F-1", "total": 9.5}
    assert done.run_id == result.run_id
    with pytest.raises(PayloadValidationError) as caught:
        await runtime.trigger(invoice, {"number": 7, "total": 1})
    assert caught.value.field == "number"


async def test_a_removed_step_is_detected_when_the_run_ends(mock_clock: Any, store: Store) -> None:
    steps = {"extra": True}

    @workflow("shrinking")
    async def shrinking(ctx: Any) -> Any:
        await ctx.step("one", charge, "1")
        if steps["extra"]:
            await ctx.step("two", charge, "2")
        await ctx.sleep("nap", 10)
        return "done"

    runtime = create_runtime(workflows=[shrinking], store=store)
    await runtime.trigger(shrinking, None)
    steps["extra"] = False
    await trio.sleep(11)
    [failed] = await runtime.sweep()
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "NonDeterminismError"
    assert "step 'two'" in failed.error.message


async def test_concurrent_ctx_calls_fail_the_run(mock_clock: Any, store: Store) -> None:
    async def slow(x: int) -> int:
        await trio.sleep(1)
        return x

    @workflow("parallel")
    async def parallel(ctx: Any) -> Any:
        async def call(step_id: str, x: int) -> None:
            await ctx.step(step_id, slow, x)

        async with trio.open_nursery() as nursery:  # not ctx.gather: the journal order would be a race
            nursery.start_soon(call, "a", 1)
            nursery.start_soon(call, "b", 2)

    runtime = create_runtime(workflows=[parallel], store=store)
    result = await runtime.trigger(parallel, None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.type == "ConcurrentContextUse"
    assert "one at a time" in result.error.message
    assert "ctx.gather" in result.error.message


async def test_step_timeout_counts_as_a_failed_attempt(mock_clock: Any, store: Store) -> None:
    tries: list[int] = []

    async def sometimes_slow() -> str:
        tries.append(1)
        if len(tries) == 1:
            await trio.sleep(100)
        return "fast enough"

    @workflow("timeouts")
    async def timeouts(ctx: Any) -> Any:
        return await ctx.step("call", sometimes_slow, timeout=5, retry=Retry(max_attempts=2, initial=0))

    runtime = create_runtime(workflows=[timeouts], store=store)
    result = await runtime.trigger(timeouts, None)
    assert result.status == "completed"
    assert result.output == "fast enough"
    assert (await runtime.get_run(result.run_id)).history[0].attempts == 2

    @workflow("always-slow")
    async def always_slow(ctx: Any) -> Any:
        return await ctx.step("call", trio.sleep, 100, timeout=5)

    failed = await runtime.trigger(always_slow, None)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "TimeoutError"
    assert "took longer than 5s" in failed.error.message


async def test_cancel_of_an_interrupted_run_ends_it_on_recovery(mock_clock: Any, make_store: Any) -> None:
    store = make_store()
    runtime = create_runtime(workflows=[order], store=store)
    # A run some crashed process left mid-flight: created, never driven.
    from tarry.journal import RunRow

    now = runtime.now()
    await store.create_run(RunRow("orphan", "order-fulfilment", "running", '{"order_id": "o"}', now, now))
    cancelled = await runtime.cancel("orphan", reason="operator")
    assert cancelled.status == "running"  # nobody here runs it: the request is recorded
    [ended] = await runtime.sweep()
    assert ended.status == "cancelled"
    assert calls == []  # its steps never ran
    info = await runtime.get_run("orphan")
    assert info.cancel_reason == "operator"
