"""The audit trail: who triggered, signalled, cancelled and retried a run, and when, on every
store; the workflow reads a signal's sender, the same on every replay."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tarry import Client, InvalidArgument, Retry, RunContext, Store, create_runtime, workflow


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@workflow("two-approvals")
async def two_approvals(ctx: RunContext[Any]) -> Any:
    first = await ctx.wait_for_event("first", "approve")
    first_by = ctx.last_signal_sender
    second = await ctx.wait_for_event("second", "approve")
    return {"first": [first, first_by], "second": [second, ctx.last_signal_sender]}


@workflow("waits")
async def waits(ctx: RunContext[Any]) -> Any:
    return await ctx.wait_for_event("wait", "never")


FAIL = {"on": True}


def flaky() -> str:
    if FAIL["on"]:
        raise RuntimeError("down")
    return "ok"


@workflow("flaky")
async def flaky_wf(ctx: RunContext[Any]) -> Any:
    return await ctx.step("call", flaky, retry=Retry(max_attempts=1))


def trail(info: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(a.action, a.by, a.detail) for a in info.audit]


async def test_each_verb_records_who_asked_and_when(make_store: Callable[[], Store], store_kind: str) -> None:
    runtime = create_runtime([two_approvals, waits, flaky_wf], make_store(), identity="ops@runtime")
    run = await runtime.trigger(two_approvals, run_id="r1", by="alice")
    assert await runtime.signal("r1", "approve", {"n": 1}, by="bob@example.com")
    info = await runtime.get_run("r1")
    assert trail(info) == [("trigger", "alice", {})]
    assert info.audit[0].at == run.created_at
    assert [(s.event, s.sent_by) for s in info.signals] == [("approve", "bob@example.com")]
    assert info.history[0].detail["sent_by"] == "bob@example.com"

    # A new runtime on the same store (a restart; the memory store is shared) replays the
    # first wait from its journal: the sender it reads there is the recorded one.
    if store_kind != "memory":
        await runtime.aclose()
        runtime = create_runtime([two_approvals, waits, flaky_wf], make_store(), identity="ops@runtime")
    assert await runtime.signal("r1", "approve", {"n": 2})  # by the runtime's identity
    done = await runtime.get_run("r1")
    assert done.status == "completed"
    assert done.output == {"first": [{"n": 1}, "bob@example.com"], "second": [{"n": 2}, "ops@runtime"]}
    assert [s.sent_by for s in done.signals] == ["bob@example.com", "ops@runtime"]

    await runtime.trigger(waits, run_id="w1")
    await runtime.cancel("w1", reason="not needed", by="carol")
    cancelled = await runtime.get_run("w1")
    assert cancelled.status == "cancelled"
    assert trail(cancelled) == [("trigger", "ops@runtime", {}), ("cancel", "carol", {"reason": "not needed"})]

    FAIL["on"] = True
    failed = await runtime.trigger(flaky_wf, run_id="f1", by="dave")
    assert failed.status == "failed"
    FAIL["on"] = False
    assert (await runtime.retry("f1", by="erin")).status == "completed"
    fork = await runtime.retry("f1", from_step="call", by="frank")
    assert trail(await runtime.get_run("f1")) == [("trigger", "dave", {}), ("retry", "erin", {"attempt": 2})]
    assert trail(await runtime.get_run(fork.run_id)) == [
        ("trigger", "frank", {"forked_from": "f1", "from_step": "call"})
    ]
    await runtime.aclose()


async def test_the_default_identity_is_user_at_host(make_store: Callable[[], Store]) -> None:
    runtime = create_runtime([waits], make_store())
    await runtime.trigger(waits, run_id="w")
    await runtime.signal("w", "other")
    await runtime.cancel("w")
    info = await runtime.get_run("w")
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    # The application's own triggers are not audited unless asked (by= or identity=).
    assert trail(info) == [("cancel", me, {"reason": "cancelled by request"})]
    assert info.signals[0].sent_by == me
    await runtime.aclose()


@pytest.mark.parametrize("bad", ["", "  ", "a\nb", "x" * 1001, 7], ids=["empty", "blank", "newline", "long", "int"])
async def test_a_bad_identity_is_refused_and_nothing_is_written(make_store: Callable[[], Store], bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="identity"):
        create_runtime([waits], make_store(), identity=bad)
    runtime = create_runtime([waits], make_store())
    with pytest.raises(InvalidArgument, match="identity"):
        await runtime.trigger(waits, run_id="w", by=bad)
    assert await runtime.list_runs() == []
    await runtime.trigger(waits, run_id="w")
    with pytest.raises(InvalidArgument, match="identity"):
        await runtime.signal("w", "other", by=bad)
    with pytest.raises(InvalidArgument, match="identity"):
        await runtime.cancel("w", by=bad)
    info = await runtime.get_run("w")
    assert (info.status, info.signals, len(info.audit)) == (
        "suspended",
        [],
        0,
    )  # nothing of the refused calls (the trigger itself is not audited)
    await runtime.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_clients_verbs_are_recorded_with_its_identity(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_url")) if kind == "postgres" else tmp_path / "t.db"
    with Client(db, workflows=[waits, flaky_wf], identity="web@frontend") as client:
        client.trigger(waits, run_id="w")
        client.signal("w", "other", {"x": 1})
        client.signal("w", "other", by="ops")
        client.cancel("w", by="ops")
        info = client.get_run("w")
        assert trail(info) == [("trigger", "web@frontend", {}), ("cancel", "ops", {"reason": "cancelled by request"})]
        assert [s.sent_by for s in info.signals] == ["web@frontend", "ops"]
        with pytest.raises(InvalidArgument, match="identity"):
            Client(db, identity="")
