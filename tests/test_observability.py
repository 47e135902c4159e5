"""Logs that explain a run, Prometheus metrics and /healthz (``tarry worker --metrics``):
real worker processes on a real SQLite file, scraped over HTTP."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from tarry import Client, SQLiteStore, Worker, create_runtime, logs, workflow
from tarry.cli import cli

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.obs_app:runtime"
ONE = "tests.obs_app:declined"  # in-process CLI tests: a fresh runtime each (APP's keeps its --db)


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _start(db: Path, log: Path, procs: list[Any], *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", APP, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    procs.append(proc)
    return proc


def _until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _declined_run(db: Path) -> str:
    """Trigger the run that retries its ``charge`` step once, then fails; wait for its end."""
    with Client(db) as client:
        _until(lambda: client.engine_info().worker_alive, "the worker to serve")
        client.trigger("declined", {"order": "o-7"}, run_id="order-7")
        _until(lambda: client.get_run("order-7").status == "failed", "the run to fail")  # wait() stops at rest
    return "order-7"


def _port(log: Path) -> int:
    """The port the worker's metrics server listens on (it logs it; we asked for port 0)."""
    found = _until(lambda: re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log.read_text()), "metrics")
    return int(found.group(1))


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of a Prometheus text exposition (labels as written)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


# -- logs -------------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_json_logs_explain_a_run_that_retries_a_step_and_fails(tmp_path: Path, procs: list[Any]) -> None:
    db, log = tmp_path / "tarry.db", tmp_path / "worker.log"
    proc = _start(db, log, procs, "--log-format", "json", "--log-level", "debug")
    run_id = _declined_run(db)
    _stop(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line is one JSON object
    mine = [line for line in lines if line.get("run_id") == run_id]
    steps = [
        (x["step_id"], x["step_status"], x["attempt"])
        for x in mine
        if x["logger"] == "tarry.runs" and "step_status" in x
    ]
    assert steps == [
        ("prepare", "started", 1),
        ("prepare", "completed", 1),
        ("charge", "started", 1),
        ("charge", "retrying", 1),
        ("charge", "started", 2),
        ("charge", "failed", 2),
    ]
    for line in mine:
        if "step_status" in line:
            assert line["workflow_id"] == "declined"
            assert line["level"] == ("debug" if line["step_status"] == "started" else "info")
            assert ("duration_ms" in line) == (line["step_status"] != "started")
    retry = next(x for x in mine if x.get("step_status") == "retrying")
    assert (retry["error_type"], retry["error_message"], retry["retry_in_s"]) == (
        "RuntimeError",
        "card declined for o-7",
        0.05,
    )
    assert retry["duration_ms"] >= 0
    [end] = [x for x in mine if x.get("status") == "failed"]
    assert end["level"] == "warning"
    assert {k: end[k] for k in ("workflow_id", "step_id", "attempt", "error_type", "error_message")} == {
        "workflow_id": "declined",
        "step_id": "charge",
        "attempt": 2,
        "error_type": "RuntimeError",
        "error_message": "card declined for o-7",
    }
    assert end["duration_ms"] >= 50  # the 50 ms backoff is in it
    # The application's own lines, at the worker's level, with the step they come from.
    app = [(x["message"], x["step_id"]) for x in lines if x["logger"] == "obs_app"]
    assert app == [
        ("preparing order o-7", "prepare"),
        ("charging order o-7", "charge"),
        ("charging order o-7", "charge"),
    ]


@pytest.mark.subprocess
def test_text_logs_carry_the_fields_and_quiet_app_logs_silences_the_app(tmp_path: Path, procs: list[Any]) -> None:
    db, log = tmp_path / "tarry.db", tmp_path / "worker.log"
    proc = _start(db, log, procs, "--log-format", "text")
    _declined_run(db)
    _stop(proc)
    text = log.read_text()
    [retry] = [line for line in text.splitlines() if "step_status=retrying" in line]
    assert " INFO    tarry.runs " in retry
    assert "step 'charge' attempt 1 failed after" in retry
    for field in ("run_id=order-7", "workflow_id=declined", "step_id=charge", "attempt=1", "error_type=RuntimeError"):
        assert field in retry.split("  ", 1)[1], retry
    assert 'error_message="card declined for o-7"' in retry
    assert re.search(r" duration_ms=[0-9.]+", retry)
    [end] = [line for line in text.splitlines() if " status=failed" in line]
    assert " WARNING tarry.runs " in end
    assert "run order-7 failed at step 'charge': RuntimeError: card declined for o-7" in end
    assert "step 'charge' attempt 1 started" not in text  # starts are debug lines
    assert "INFO    obs_app       charging order o-7  run_id=order-7 workflow_id=declined step_id=charge" in text

    quiet_db, quiet_log = tmp_path / "quiet.db", tmp_path / "quiet.log"
    proc = _start(quiet_db, quiet_log, procs, "--log-format", "text", "--quiet-app-logs")
    _declined_run(quiet_db)
    _stop(proc)
    quiet = quiet_log.read_text()
    assert "obs_app" not in quiet
    assert "step_status=retrying" in quiet  # tarry's own lines stay


def _capture(fmt: str = "json", level: str = "INFO") -> tuple[io.StringIO, Any]:
    stream = io.StringIO()
    return stream, logs.configure(fmt, level, stream)


async def test_replayed_steps_do_not_log_again(mock_clock: Any, tmp_path: Path) -> None:
    calls: list[str] = []

    async def work(name: str) -> str:
        calls.append(name)
        return name

    @workflow("replayed")
    async def replayed(ctx: Any) -> Any:
        await ctx.step("first", work, "first")
        await ctx.sleep("nap", 3600)
        await ctx.step("second", work, "second")
        return "done"

    stream, undo = _capture()
    try:
        # passivate_after=0: the run's coroutine is dropped while it sleeps, and the wake-up
        # replays the journal (``first`` is returned from it, not run).
        runtime = create_runtime([replayed], SQLiteStore(tmp_path / "tarry.db"), passivate_after=0)
        async with runtime:
            await runtime.trigger(replayed, None, run_id="r")
            await wait_for(lambda: _done(runtime, "r"), "the run to end", timeout=7200)
    finally:
        undo()
    assert calls == ["first", "second"]
    steps = [
        (x["step_id"], x["step_status"]) for x in map(json.loads, stream.getvalue().splitlines()) if "step_status" in x
    ]
    assert steps == [("first", "completed"), ("second", "completed")]


async def _done(runtime: Any, run_id: str) -> bool:
    return bool((await runtime.get_run(run_id)).status == "completed")


async def test_resumptions_log_at_debug_and_cancels_without_an_actor_count_as_ended(
    mock_clock: Any, tmp_path: Path
) -> None:
    from tarry.metrics import Metrics

    @workflow("waits")
    async def waits(ctx: Any) -> Any:
        return await ctx.wait_for_event("w", "go")

    runtime = create_runtime([waits], SQLiteStore(tmp_path / "tarry.db"), passivate_after=0)
    metrics = Metrics(runtime)
    detach = metrics.attach()
    stream, undo = _capture("json", "DEBUG")
    try:
        async with runtime:
            await runtime.trigger(waits, None, run_id="signalled")
            await runtime.trigger(waits, None, run_id="cancelled")
            await runtime.signal("signalled", "go", 1)
            await wait_for(lambda: _done(runtime, "signalled"), "the signalled run to end")
            await runtime.cancel("cancelled")  # suspended, passivated: the store ends it
    finally:
        undo()
        detach()
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    resumed = [
        (x["run_id"], x["status"], x["event"]) for x in lines if x["message"].startswith("run signalled resumed")
    ]
    assert resumed == [("signalled", "running", "go")]
    ended = {
        status: metrics.registry.get_sample_value("tarry_runs_ended_total", {"workflow": "waits", "status": status})
        for status in ("completed", "cancelled")
    }
    assert ended == {"completed": 1, "cancelled": 1}
    assert metrics.registry.get_sample_value("tarry_runs_started_total", {"workflow": "waits"}) == 2


def test_log_level_applies_to_the_app_loggers_too() -> None:
    stream, undo = _capture("text", "WARNING")
    try:
        assert not logging.getLogger("tarry.runs").isEnabledFor(logging.INFO)
        logging.getLogger("obs_app").info("hidden")
        logging.getLogger("obs_app").warning("shown")
    finally:
        undo()
    assert stream.getvalue().count("\n") == 1
    assert "shown" in stream.getvalue()


# -- metrics and health ----------------------------------------------------------------------


@pytest.mark.subprocess
def test_metrics_of_a_worker_over_http(tmp_path: Path, procs: list[Any]) -> None:
    db, log = tmp_path / "tarry.db", tmp_path / "worker.log"
    proc = _start(db, log, procs, "--metrics", "127.0.0.1:0")
    port = _port(log)
    _declined_run(db)
    with Client(db) as client:
        client.trigger("napper", None, run_id="nap-1")
        _until(lambda: client.get_run("nap-1").status == "completed", "the nap to end")
    status, text = _get(port, "/metrics")
    assert status == 200
    got = _samples(text)
    assert got['tarry_runs_started_total{workflow="declined"}'] == 1
    assert got['tarry_runs_started_total{workflow="napper"}'] == 1
    assert got['tarry_runs_ended_total{status="failed",workflow="declined"}'] == 1
    assert got['tarry_runs_ended_total{status="completed",workflow="napper"}'] == 1
    assert got['tarry_step_attempts_total{step="charge",workflow="declined"}'] == 2
    assert got['tarry_step_failures_total{step="charge",workflow="declined"}'] == 2
    assert got['tarry_step_attempts_total{step="prepare",workflow="declined"}'] == 1
    assert got['tarry_step_failures_total{step="prepare",workflow="declined"}'] == 0
    assert got['tarry_step_duration_seconds_count{step="charge",workflow="declined"}'] == 2
    assert got['tarry_step_duration_seconds_bucket{le="+Inf",step="after",workflow="napper"}'] == 1
    assert got["tarry_timer_lateness_seconds_count"] == 2  # the retry's backoff and the nap
    assert got["tarry_commit_batch_size_count"] >= 1
    assert got["tarry_commit_batch_size_sum"] >= got["tarry_commit_batch_size_count"]
    assert got["tarry_commit_seconds_count"] == got["tarry_commit_batch_size_count"]
    assert got["tarry_worker_lease_held"] == 1
    assert (got["tarry_runs_suspended"], got["tarry_runs_waiting"]) == (0, 0)
    assert not any(name.startswith("python_gc") for name in got)  # the worker's own registry only
    _stop(proc)


@pytest.mark.subprocess
def test_healthz_is_200_while_serving_and_503_for_a_standby(tmp_path: Path, procs: list[Any]) -> None:
    db = tmp_path / "tarry.db"
    first = _start(db, tmp_path / "first.log", procs, "--metrics", "127.0.0.1:0", "--lease-ttl", "1")
    first_port = _port(tmp_path / "first.log")
    _until(lambda: _get(first_port, "/healthz")[0] == 200, "the first worker to serve")
    status, body = _get(first_port, "/healthz")
    assert json.loads(body)["status"] == "serving"
    assert body.count("\n") == 1

    second = _start(db, tmp_path / "second.log", procs, "--metrics", "127.0.0.1:0", "--lease-ttl", "1")
    second_port = _port(tmp_path / "second.log")
    _until(lambda: "standing by" in (tmp_path / "second.log").read_text(), "the second worker to stand by")
    status, body = _get(second_port, "/healthz")
    assert (status, json.loads(body)["status"], json.loads(body)["lease"]) == (503, "standby", False)
    assert _samples(_get(second_port, "/metrics")[1])["tarry_worker_lease_held"] == 0

    _stop(first)  # the standby takes over
    _until(lambda: _get(second_port, "/healthz")[0] == 200, "the standby to take over")
    assert _samples(_get(second_port, "/metrics")[1])["tarry_worker_lease_held"] == 1
    _stop(second)


async def test_healthz_says_503_while_draining(tmp_path: Path) -> None:
    from tarry.metrics import Metrics, MetricsServer

    gate = trio.Event()

    async def held() -> str:
        await gate.wait()
        return "ok"

    @workflow("held")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("held", held)

    runtime = create_runtime([wf], SQLiteStore(tmp_path / "tarry.db"))
    worker = Worker(runtime, wake_socket=False)
    server = MetricsServer(Metrics(runtime, worker), "127.0.0.1", 0)
    try:

        async def health() -> tuple[int, str]:
            return await trio.to_thread.run_sync(_get, server.port, "/healthz")

        assert (await health())[0] == 503  # not started
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            assert (await health())[0] == 200
            nursery.start_soon(runtime.trigger, wf, None)
            await wait_for(lambda: runtime._actors, "the run to start")
            worker.stop()
            await wait_for(lambda: worker.state == "draining", "the drain")
            status, body = await health()
            assert (status, json.loads(body)["status"], json.loads(body)["lease"]) == (503, "draining", True)
            gate.set()
        status, body = await health()
        assert (status, json.loads(body)["status"]) == (503, "stopped")
    finally:
        await trio.to_thread.run_sync(server.close)
    assert runtime.metrics is None  # detached
    assert runtime.store.commit_hook is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
async def test_scrapes_open_no_database_connection_each(tmp_path: Path) -> None:
    from tarry.metrics import Metrics, MetricsServer

    runtime = create_runtime([], SQLiteStore(tmp_path / "tarry.db"))
    worker = Worker(runtime, wake_socket=False)
    server = MetricsServer(Metrics(runtime, worker), "127.0.0.1", 0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)

            async def scrape(times: int) -> int:
                for _ in range(times):
                    status, text = await trio.to_thread.run_sync(_get, server.port, "/metrics")
                    assert status == 200
                    assert "tarry_runs_suspended 0.0" in text
                return len(os.listdir("/proc/self/fd"))

            before = await scrape(3)
            # 20 more scrapes; the worker's own threads may open a connection or two meanwhile.
            assert await scrape(20) - before < 10
            worker.stop()
    finally:
        await trio.to_thread.run_sync(server.close)


def test_step_ids_past_the_cap_share_one_series() -> None:
    from tarry.metrics import MAX_STEPS_PER_WORKFLOW, Metrics

    metrics = Metrics(create_runtime([]))
    for i in range(MAX_STEPS_PER_WORKFLOW + 50):
        metrics.step_attempted("wf", f"item-{i}", 0.001, False)
    steps = {s.labels["step"] for m in metrics.registry.collect() if m.name == "tarry_step_attempts" for s in m.samples}
    assert len(steps) == MAX_STEPS_PER_WORKFLOW + 1
    assert metrics.registry.get_sample_value("tarry_step_attempts_total", {"workflow": "wf", "step": "_other"}) == 50


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_both_stores_report_commits_through_the_one_hook(kind: str, tmp_path: Path, request: Any) -> None:
    from tarry.journal import EntryRow, RunRow, Write

    if kind == "postgres":
        from tarry.store.postgres import PostgresStore

        store: Any = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        store = SQLiteStore(tmp_path / "tarry.db")
    reported: list[tuple[int, float]] = []
    store.commit_hook = lambda writes, seconds: reported.append((writes, seconds))
    await store.open()
    try:
        now = time.time()
        await store.create_run(RunRow("r", "wf", "running", "null", now, now))
        entry = EntryRow("r", 0, "s", "step", "completed", now, now, "1", None, None, 1)
        await store.write(Write("r", now, entries=[entry]))
    finally:
        await store.close()
    assert len(reported) >= 2
    assert sum(writes for writes, _ in reported) >= 2
    assert all(writes >= 1 and seconds >= 0 for writes, seconds in reported)


# -- refusals ----------------------------------------------------------------------------------


def test_the_engine_does_not_import_prometheus_client_unless_asked() -> None:
    code = "import sys, tarry, tarry.cli, tarry.worker, tarry.runtime; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_metrics_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "tarry.metrics", raising=False)
    db = tmp_path / "tarry.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "worker", ONE, "--metrics", "127.0.0.1:0"])
    assert result.exit_code == 1
    assert "pip install 'tarry[metrics]'" in result.output
    assert not db.exists()


@pytest.mark.parametrize("address", ["9464", "localhost:", ":9464", "127.0.0.1:99999", "127.0.0.1:http"])
def test_a_bad_metrics_address_is_refused_before_anything_is_written(tmp_path: Path, address: str) -> None:
    db = tmp_path / "tarry.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "worker", ONE, "--metrics", address])
    assert result.exit_code != 0
    assert "InvalidArgument: --metrics takes HOST:PORT" in result.output
    assert not db.exists()


def test_a_metrics_port_in_use_is_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "tarry.db"
        result = CliRunner().invoke(cli, ["--db", str(db), "worker", ONE, "--metrics", f"127.0.0.1:{port}"])
    assert result.exit_code != 0
    assert f"InvalidArgument: --metrics cannot listen on 127.0.0.1:{port}" in result.output
    assert not db.exists()
