"""OpenTelemetry traces: a span per run activation and per step attempt, joined to the trace
that was current at trigger, even in a runtime reopened on the SQLite file later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tarry import Client, InvalidArgument, Retry, RunContext, SQLiteStore, create_runtime, workflow

ROOT = Path(__file__).resolve().parent.parent


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def spans() -> Iterator[Spans]:
    found = Spans()
    yield found
    found.provider.shutdown()


TRIES = {"shaky": 0}


def shaky() -> str:
    TRIES["shaky"] += 1
    if TRIES["shaky"] == 1:
        raise RuntimeError("the first try fails")
    return "ok"


@workflow("traced")
async def traced(ctx: RunContext[Any]) -> Any:
    one = await ctx.step("one", lambda: 1)
    return [one, await ctx.step("shaky", shaky, retry=Retry(max_attempts=2, initial=0))]


@workflow("broken")
async def broken(ctx: RunContext[Any]) -> Any:
    raise ValueError("no such order")


@workflow("approval")
async def approval(ctx: RunContext[Any]) -> Any:
    await ctx.step("draft", lambda: "draft")
    decision = await ctx.wait_for_event("review", "approve")
    await ctx.step("publish", lambda: "published")
    return decision


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_span_per_activation_and_per_step_attempt(tmp_path: Path, spans: Spans) -> None:
    TRIES["shaky"] = 0
    runtime = create_runtime([traced, broken], SQLiteStore(tmp_path / "t.db"), tracing=spans.provider)
    result = await runtime.trigger(traced, run_id="t1")
    assert result.output == [1, "ok"]
    found = spans.finished()
    run = next(s for s in found if s.name == "tarry.run traced")
    assert attributes(run) == {
        "tarry.run_id": "t1",
        "tarry.workflow_id": "traced",
        "tarry.attempt": 1,
        "tarry.status": "completed",
    }
    steps = [s for s in found if s.name.startswith("tarry.step")]
    assert [(attributes(s)["tarry.step_id"], attributes(s)["tarry.attempt"]) for s in steps] == [
        ("one", 1),
        ("shaky", 1),
        ("shaky", 2),
    ]
    assert all(attributes(s)["tarry.run_id"] == "t1" and attributes(s)["tarry.workflow_id"] == "traced" for s in steps)
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in steps)
    assert all(s.context.trace_id == run.context.trace_id for s in steps)
    failed_try = steps[1]
    assert failed_try.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.message"] for e in failed_try.events if e.attributes] == ["the first try fails"]
    assert steps[2].status.status_code is not StatusCode.ERROR

    await runtime.trigger(broken, run_id="b1")
    failed = next(s for s in spans.finished() if s.name == "tarry.run broken")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: no such order"
    await runtime.aclose()


async def test_spans_join_the_triggers_trace_after_the_runtime_is_reopened(tmp_path: Path, spans: Spans) -> None:
    path = tmp_path / "t.db"
    first = create_runtime([approval], SQLiteStore(path), tracing=spans.provider)
    with spans.provider.get_tracer("test").start_as_current_span("POST /articles") as request:
        assert (await first.trigger(approval, run_id="a1")).status == "suspended"
    await first.aclose()
    caller = request.get_span_context()
    spans.exporter.clear()

    # Another runtime on the same file, outside the caller's span, finishes the run.
    second = create_runtime([approval], SQLiteStore(path), tracing=spans.provider)
    await second.signal("a1", "approve", {"ok": True})
    assert (await second.get_run("a1")).status == "completed"
    found = spans.finished()
    assert {s.name for s in found} == {"tarry.run approval", "tarry.step publish"}
    assert all(s.context.trace_id == caller.trace_id for s in found)
    run = next(s for s in found if s.name == "tarry.run approval")
    assert run.parent is not None
    assert run.parent.span_id == caller.span_id
    await second.aclose()


async def test_a_clients_trigger_carries_its_trace_to_the_worker(tmp_path: Path, spans: Spans) -> None:
    path = tmp_path / "t.db"
    with Client(path, workflows=[traced]) as client, spans.provider.get_tracer("t").start_as_current_span("cron"):
        client.trigger(traced, run_id="c1")
        caller = client.get_run("c1")  # committed, no worker yet
    assert caller.status == "running"
    TRIES["shaky"] = 1
    runtime = create_runtime([traced], SQLiteStore(path), tracing=spans.provider)
    await runtime.sweep()
    found = spans.finished()
    traces = {s.context.trace_id for s in found}
    cron = next(s for s in found if s.name == "cron")
    assert traces == {cron.context.trace_id}
    assert next(s for s in found if s.name == "tarry.run traced").parent.span_id == cron.context.span_id  # type: ignore[union-attr]
    await runtime.aclose()


@workflow("parent")
async def parent(ctx: RunContext[Any]) -> Any:
    return await ctx.child("kid", traced)


async def test_a_child_runs_spans_are_children_of_its_parents_activation(tmp_path: Path, spans: Spans) -> None:
    TRIES["shaky"] = 1
    runtime = create_runtime([parent, traced], SQLiteStore(tmp_path / "t.db"), tracing=spans.provider)
    await runtime.trigger(parent, run_id="p")  # passive: the child runs inline, then the parent waits
    await runtime.sweep()  # the parent takes its child's outcome
    assert (await runtime.get_run("p")).output == [1, "ok"]
    found = spans.finished()
    runs = {s.name: s for s in found if s.name.startswith("tarry.run")}
    assert set(runs) == {"tarry.run parent", "tarry.run traced"}
    assert {s.context.trace_id for s in found} == {runs["tarry.run parent"].context.trace_id}
    kid = runs["tarry.run traced"]
    assert kid.parent is not None
    assert kid.parent.span_id in {s.context.span_id for s in found if s.name == "tarry.run parent"}
    await runtime.aclose()


def test_tracing_without_opentelemetry_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(InvalidArgument, match=r"pip install 'tarry\[otel\]'"):
        create_runtime([traced], tracing=True)


@pytest.mark.subprocess
def test_without_tracing_the_engine_never_imports_opentelemetry(tmp_path: Path) -> None:
    code = (
        "import sys, trio\n"
        "from tarry import Client, SQLiteStore, create_runtime, workflow\n"
        "@workflow('approval')\n"
        "async def approval(ctx):\n"
        "    await ctx.step('draft', lambda: 1)\n"
        "    return await ctx.wait_for_event('review', 'approve')\n"
        f"path = {str(tmp_path / 't.db')!r}\n"
        "async def main():\n"
        "    runtime = create_runtime([approval], SQLiteStore(path))\n"
        "    await runtime.trigger(approval, run_id='a')\n"
        "    await runtime.signal('a', 'approve', 1)\n"
        "    await runtime.aclose()\n"
        "trio.run(main)\n"
        "with Client(path) as client:\n"
        "    client.trigger('approval', run_id='b')\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def start_worker(db: Path, spans_file: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TARRY_TEST_SPANS": str(spans_file)}
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", "tests.otel_app:runtime", "--otel"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    with Client(db) as client:
        deadline = time.monotonic() + 20
        while not (client.engine_info().worker_pid == proc.pid and client.engine_info().worker_alive):
            assert time.monotonic() < deadline, "the worker did not start"
            assert proc.poll() is None, log.read_text()
            time.sleep(0.02)
    return proc


@pytest.mark.subprocess
def test_worker_otel_spans_join_the_callers_trace_across_a_killed_worker(tmp_path: Path, spans: Spans) -> None:
    db, spans_file, log = tmp_path / "t.db", tmp_path / "spans.jsonl", tmp_path / "worker.log"
    first = start_worker(db, spans_file, log)
    try:
        with Client(db) as client, spans.provider.get_tracer("t").start_as_current_span("POST /docs") as request:
            client.trigger("approval", {"title": "T"}, run_id="o1")
            assert client.wait("o1", 15).status == "suspended"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=15)
    second = start_worker(db, spans_file, log)
    try:
        with Client(db) as client:
            client.signal("o1", "approve", {"approved": True})
            assert client.wait("o1", 15).status == "completed"
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, log.read_text()
    caller = request.get_span_context()
    found = [json.loads(line) for line in spans_file.read_text().splitlines()]
    by_worker = {pid: [s["name"] for s in found if s["pid"] == pid] for pid in (first.pid, second.pid)}
    assert by_worker[first.pid] == ["tarry.step draft"]  # its activation span died with it
    assert sorted(by_worker[second.pid]) == ["tarry.run approval", "tarry.step publish"]
    assert {s["trace_id"] for s in found} == {f"{caller.trace_id:032x}"}
    run = next(s for s in found if s["name"] == "tarry.run approval")
    assert run["parent_id"] == f"{caller.span_id:016x}"
    assert run["attributes"]["tarry.run_id"] == "o1"
