"""The tarry CLI: real processes end to end, bad input, exit codes, output formats."""

from __future__ import annotations

import getpass
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tarry import Client, InvalidArgument, RunInfo, RunResult, SQLiteStore, create_runtime
from tarry.cli import cli, exit_code, load_app
from tarry.store.sqlite import SCHEMA_VERSION

from . import workflows_cli

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.workflows_cli:runtime"


def tarry(
    db: Path | str, *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``tarry --db DB ARGS`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def cli_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """What ``--db`` names: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "tarry.db"


@pytest.fixture
def worker(tmp_path: Path, cli_db: Path | str) -> Iterator[subprocess.Popen[bytes]]:
    db = cli_db
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", APP, "--log-format", "json"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        with Client(db) as client:
            deadline = time.monotonic() + 15
            while not (client.engine_info().worker_pid == proc.pid and client.engine_info().worker_alive):
                assert time.monotonic() < deadline, "the worker did not start"
                assert proc.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def one_line_error(result: subprocess.CompletedProcess[str], type_name: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {type_name}: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.subprocess
def test_approval_from_other_processes(tmp_path: Path, cli_db: Path | str, worker: Any) -> None:
    db = cli_db
    triggered = tarry(db, "trigger", "approval", "--payload", '{"title": "Q3 report"}', "--wait", "--json")
    assert triggered.returncode == 0, triggered.stderr
    run = json.loads(triggered.stdout)
    assert run["status"] == "suspended"
    assert run["pending"]["event"] == "approve"
    waiting = tarry(db, "runs", "--waiting", "event", "--json")
    assert [r["run_id"] for r in json.loads(waiting.stdout)] == [run["run_id"]]
    assert json.loads(tarry(db, "runs", "--waiting", "sleep", "--json").stdout) == []

    signalled = tarry(db, "signal", run["run_id"], "approve", "--payload", "-", stdin='{"approved": true, "by": "ana"}')
    assert signalled.returncode == 0, signalled.stderr
    assert f"Sent 'approve' to run {run['run_id']}" in signalled.stdout

    with Client(db) as client:
        client.wait(run["run_id"], 10)
    shown = tarry(db, "show", run["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["status"] == "completed"
    assert info["output"] == {"published": True, "by": "ana"}
    assert info["payload"] == {"title": "Q3 report", "pages": 1}
    assert [(h["step_id"], h["status"]) for h in info["history"]] == [
        ("draft", "completed"),
        ("review", "completed"),
        ("publish", "completed"),
    ]
    assert info["signals"][0]["consumed_by"] == "review"
    assert set(info) == {f.name for f in fields(RunInfo)}

    engine_info = tarry(db, "info")
    assert engine_info.returncode == 0, engine_info.stderr
    assert "serving" in engine_info.stdout
    human = tarry(db, "show", run["run_id"])
    assert "Timeline" in human.stdout
    assert "publish" in human.stdout
    listed = tarry(db, "runs", "--status", "completed", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run["run_id"]]

    # A run that fails: trigger --wait exits 1; fixed, retry --wait exits 0.
    flag = tmp_path / "fixed"
    failing = tarry(db, "trigger", "flaky", "--payload", json.dumps({"path": str(flag)}), "--wait")
    assert failing.returncode == 1, failing.stderr
    assert "failed" in failing.stdout
    run_id = failing.stdout.split("Triggered run ", 1)[1].split(".", 1)[0]
    flag.touch()
    retried = tarry(db, "retry", run_id, "--wait", "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "completed"
    # Re-run the completed one from its first step: a new run, on the worker.
    first_step = json.loads(tarry(db, "show", run_id, "--json").stdout)["history"][0]["step_id"]
    forked = tarry(db, "retry", run_id, "--from-step", first_step, "--wait", "--json")
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert (fork["status"], fork["forked_from"]) == ("completed", run_id)
    assert fork["run_id"] != run_id
    assert f"Forked from {run_id}" in " ".join(tarry(db, "show", fork["run_id"]).stdout.split())

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()]
    about = [
        (line["status"], line["message"]) for line in lines if line.get("run_id") == run["run_id"] and "status" in line
    ]
    assert [status for status, _ in about] == ["running", "suspended", "suspended", "completed"], about
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.mark.subprocess
def test_as_names_who_asked_in_the_audit_trail(tmp_path: Path, cli_db: Path | str, worker: Any) -> None:
    db = cli_db
    run = json.loads(
        tarry(db, "trigger", "approval", "--payload", '{"title": "T"}', "--as", "alice", "--wait", "--json").stdout
    )
    signalled = tarry(
        db, "signal", run["run_id"], "approve", "--payload", '{"approved": true}', "--as", "bob", "--wait"
    )
    assert signalled.returncode == 0, signalled.stderr
    info = json.loads(tarry(db, "show", run["run_id"], "--json").stdout)
    assert [(a["action"], a["by"]) for a in info["audit"]] == [("trigger", "alice")]
    assert [(s["event"], s["sent_by"]) for s in info["signals"]] == [("approve", "bob")]
    assert info["history"][1]["detail"]["sent_by"] == "bob"
    human = " ".join(tarry(db, "show", run["run_id"]).stdout.split())
    assert "trigger by alice" in human
    assert "(from bob)" in human  # the wait's timeline entry
    assert "SENT BY" in human
    assert " bob " in human

    flag = tmp_path / "fixed"
    failed = json.loads(
        tarry(db, "trigger", "flaky", "--payload", json.dumps({"path": str(flag)}), "--wait", "--json").stdout
    )
    flag.touch()
    assert tarry(db, "retry", failed["run_id"], "--as", "carol", "--wait").returncode == 0
    waiting = json.loads(tarry(db, "trigger", "approval", "--payload", '{"title": "U"}', "--wait", "--json").stdout)
    assert tarry(db, "cancel", waiting["run_id"], "--reason", "dup", "--as", "dave").returncode == 0
    retried = json.loads(tarry(db, "show", failed["run_id"], "--json").stdout)["audit"]
    assert [(a["action"], a["by"], a["detail"]) for a in retried[1:]] == [("retry", "carol", {"attempt": 2})]
    audit = json.loads(tarry(db, "show", waiting["run_id"], "--json").stdout)["audit"]
    assert audit[0]["by"] == f"{getpass.getuser()}@{socket.gethostname()}"  # the default: USER@HOST
    assert [(a["action"], a["by"], a["detail"]) for a in audit[1:]] == [("cancel", "dave", {"reason": "dup"})]

    refused = tarry(db, "signal", waiting["run_id"], "approve", "--as", "")
    assert refused.returncode != 0
    assert "identity" in one_line_error(refused, "InvalidArgument")


@pytest.mark.subprocess
def test_repeated_triggers_and_signals_act_once(tmp_path: Path, cli_db: Path | str, worker: Any) -> None:
    db = cli_db
    payload = '{"title": "Q4", "pages": 2}'
    first = tarry(db, "trigger", "approval", "--run-id", "doc-7", "--payload", payload, "--wait", "--json")
    assert first.returncode == 0, first.stderr
    again = tarry(db, "trigger", "approval", "--run-id", "doc-7", "--payload", '{"pages": 2, "title": "Q4"}', "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["created_at"] == json.loads(first.stdout)["created_at"]
    other = tarry(db, "trigger", "approval", "--run-id", "doc-7", "--payload", '{"title": "Q5"}')
    assert other.returncode != 0
    assert "another payload" in one_line_error(other, "IdempotencyConflict")

    # Two senders (a script retried after a timeout, say) in processes of their own, one key.
    send = ["signal", "doc-7", "approve", "--payload", '{"approved": true, "by": "ana"}', "--dedup-key", "ticket-42"]
    command = [sys.executable, "-m", "tarry.cli", "--db", str(db), *send]
    sends = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=30) for p in sends]
    assert all(p.returncode == 0 for p in sends), outs
    assert sorted("Already sent" in out for out, _ in outs) == [False, True]
    with Client(db) as client:
        client.wait("doc-7", 10)
        info = client.get_run("doc-7")
        assert info.status == "completed"
        assert [(s.event, s.consumed_by) for s in info.signals] == [("approve", "review")]
        assert client.signal("doc-7", "approve", {"approved": True, "by": "ana"}, dedup_key="ticket-42") is False


@pytest.mark.subprocess
def test_bad_input_gives_one_line_and_the_right_exit_code(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db, workflows=workflows_cli.WORKFLOWS) as client:
        done = client.trigger("checked", 2)
        # Finish it in-process, so that a signal to it is refused.
        client.store.submit_sync(  # type: ignore[attr-defined]
            lambda conn: conn.execute("UPDATE runs SET status = 'completed' WHERE run_id = ?", (done.run_id,))
        )
    checks = [
        (("trigger", "approval", "--payload", "{not json"), 2, "InvalidArgument"),
        (("--app", APP, "trigger", "nope", "--payload", "{}"), 2, "WorkflowNotFound"),
        (("--app", APP, "trigger", "approval", "--payload", '{"pages": "x"}'), 2, "PayloadValidationError"),
        (("show", "nope"), 2, "RunNotFound"),
        (("signal", "nope", "approve"), 2, "RunNotFound"),
        (("signal", done.run_id, "approve"), 1, "RunFinished"),
    ]
    for args, code, type_name in checks:
        result = tarry(db, *args)
        assert result.returncode == code, (args, result.stderr)
        one_line_error(result, type_name)

    foreign = tmp_path / "notes.db"
    foreign.write_text("not a database at all\n" * 50)
    result = tarry(foreign, "runs")
    assert result.returncode == 2
    one_line_error(result, "NotATarryDatabase")

    newer = tmp_path / "newer.db"
    Client(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    result = tarry(newer, "trigger", "approval")
    assert result.returncode == 2
    assert f"schema version {SCHEMA_VERSION + 1}" in one_line_error(result, "SchemaTooNew")


# -- in this process ----------------------------------------------------------------------------


def invoke(db: Path, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=stdin, prog_name="tarry")


def test_payload_from_stdin_a_file_or_nowhere(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    (tmp_path / "p.json").write_text('{"title": "from a file"}')
    by_file = invoke(
        db, "--app", APP, "trigger", "approval", "--create", "--payload-file", str(tmp_path / "p.json"), "--json"
    )
    assert by_file.exit_code == 0, by_file.output
    by_stdin = invoke(db, "--app", APP, "trigger", "approval", "-p", "-", "--json", stdin='{"title": "piped"}')
    assert by_stdin.exit_code == 0, by_stdin.output
    with Client(db) as client:
        payloads = {client.get_run(json.loads(r.stdout)["run_id"]).payload["title"] for r in (by_file, by_stdin)}
    assert payloads == {"from a file", "piped"}
    both = invoke(db, "trigger", "free", "-p", "{}", "--payload-file", str(tmp_path / "p.json"))
    assert both.exit_code == 2
    assert "once" in both.output


def test_waiting_without_a_worker_says_so_and_times_out_with_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--db", str(tmp_path / "tarry.db"), "trigger", "free", "--create", "--wait", "--timeout", "0.1"],
        prog_name="tarry",
    )
    assert result.exit_code == 1
    assert "No worker serves" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: WaitTimeout: ")


def test_json_errors_carry_the_code(tmp_path: Path) -> None:
    result = invoke(tmp_path / "tarry.db", "--app", APP, "trigger", "approval", "--create", "--payload", "[]", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["type"], error["workflow_id"]) == (
        "payload_invalid",
        "PayloadValidationError",
        "approval",
    )


def test_reads_of_a_missing_database_do_not_create_it(tmp_path: Path) -> None:
    for args in (["runs"], ["show", "x"], ["info"], ["workflows"]):
        result = invoke(tmp_path / "missing.db", *args)
        assert result.exit_code == 2, result.output
        assert "DatabaseMissing" in result.output
    assert not (tmp_path / "missing.db").exists()


def test_human_tables_and_json_keys(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db, workflows=workflows_cli.WORKFLOWS) as client:
        run = client.trigger("approval", {"title": "t"}, run_id="run-1")
    listed = invoke(db, "runs")
    assert listed.exit_code == 0
    assert "run-1" in listed.output
    assert "approval" in listed.output
    assert "running" in listed.output
    as_json = json.loads(invoke(db, "runs", "--json").stdout)
    assert set(as_json[0]) == {f.name for f in fields(RunResult)}
    assert json.loads(invoke(db, "runs", "--search", "nothing-like-it", "--json").stdout) == []
    assert "No runs." in invoke(db, "runs", "--status", "failed").output
    shown = invoke(db, "show", run.run_id)
    assert "Payload" in shown.output
    assert "(no entries yet)" in shown.output
    cancelled = invoke(db, "cancel", run.run_id, "--reason", "not needed", "--json")
    assert json.loads(cancelled.stdout)["status"] == "running"  # no worker: the request waits for one
    info = json.loads(invoke(db, "info", "--json").stdout)
    assert info["worker"] is None
    assert info["pending_changes"] == 2
    assert "No workflows known" in invoke(db, "workflows").output
    known = json.loads(invoke(db, "--app", APP, "workflows", "--json").stdout)
    assert {w["id"] for w in known} == {w.id for w in workflows_cli.WORKFLOWS}


def test_completion_offers_run_ids(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db) as client:
        client.trigger("x", None, run_id="abc-1")
        client.trigger("x", None, run_id="abd-2")
    env = {"_TARRY_COMPLETE": "bash_complete", "COMP_WORDS": f"tarry --db {db} show ab", "COMP_CWORD": "4"}
    result = CliRunner().invoke(cli, [], env=env, prog_name="tarry")
    assert result.exit_code == 0
    assert set(result.output.split()) == {"plain,abc-1", "plain,abd-2"}


def test_exit_codes_by_error_type() -> None:
    import tarry

    assert exit_code(tarry.RunNotFound("r")) == 2
    assert exit_code(tarry.WorkflowNotFound("w", [])) == 2
    assert exit_code(tarry.PayloadValidationError("w", [])) == 2
    assert exit_code(tarry.NotATarryDatabase("p", "d")) == 2
    assert exit_code(tarry.SchemaTooNew("p", 3, 2)) == 2
    assert exit_code(tarry.DatabaseMissing("p")) == 2
    assert exit_code(tarry.RunFinished("r", "completed", "signal")) == 1
    assert exit_code(tarry.RunNotRetryable("r", "running")) == 1
    assert exit_code(tarry.WaitTimeout("r", 1, "running")) == 1
    assert exit_code(tarry.StoreBusy("p", "locked")) == 1
    assert exit_code(tarry.LeaseLost("p", "me", "them")) == 1


# -- APP ----------------------------------------------------------------------------------------


def test_load_app_accepts_a_runtime_a_workflow_a_list_or_a_module() -> None:
    assert load_app(APP) is workflows_cli.runtime
    assert load_app("tests.workflows_cli:approval") == [workflows_cli.approval]
    assert load_app("tests.workflows_cli:WORKFLOWS") == workflows_cli.WORKFLOWS
    assert load_app("tests.workflows_cli") is workflows_cli.runtime  # its one Runtime
    found = load_app("tests.test_client")  # no Runtime there: every workflow it defines
    assert isinstance(found, list)
    assert {w.id for w in found} == {"order", "line", "ticket", "count", "free"}


def test_load_app_says_what_is_wrong() -> None:
    with pytest.raises(InvalidArgument, match="cannot import 'no_such_module'"):
        load_app("no_such_module:x")
    with pytest.raises(InvalidArgument, match="has no attribute 'nothing'"):
        load_app("tests.workflows_cli:nothing")
    with pytest.raises(InvalidArgument, match="must name a Runtime"):
        load_app("tests.workflows_cli:record")
    with pytest.raises(InvalidArgument, match="no workflows"):
        load_app("json")


def test_worker_refuses_a_bad_app_or_a_second_database(tmp_path: Path) -> None:
    result = invoke(tmp_path / "tarry.db", "worker", "no_such_module:runtime")
    assert result.exit_code == 2
    assert "Error: InvalidArgument: cannot import" in result.output
    elsewhere = create_runtime(store=SQLiteStore(tmp_path / "other.db"))
    workflows_cli.elsewhere = elsewhere  # type: ignore[attr-defined]
    try:
        result = invoke(tmp_path / "tarry.db", "worker", "tests.workflows_cli:elsewhere")
    finally:
        del workflows_cli.elsewhere  # type: ignore[attr-defined]
    assert result.exit_code == 2
    assert "--db says" in result.output
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database\n" * 50)
    result = invoke(foreign, "worker", APP)
    assert result.exit_code == 2
    assert result.output.startswith("Error: NotATarryDatabase: ")


@pytest.mark.parametrize("name", ["json", "text"])
def test_log_lines_carry_the_run_fields(name: str) -> None:
    import io
    import logging

    from tarry import logs

    stream = io.StringIO()
    undo = logs.configure(name, "INFO", stream)
    try:
        logging.getLogger("tarry.runs").info("run %s suspended: sleep %r", "r1", "nap")
        logging.getLogger("tarry.runtime").info("run %s started (%s)", "r2", "wf", extra={"run_id": "r2"})
    finally:
        undo()
    assert logging.getLogger("tarry").propagate
    first, second = stream.getvalue().splitlines()
    if name == "json":
        assert {k: v for k, v in json.loads(first).items() if k in ("run_id", "status", "step_id")} == {
            "run_id": "r1",
            "status": "suspended",
            "step_id": "nap",
        }
        assert json.loads(second)["run_id"] == "r2"
    else:
        assert "tarry.runs" in first
        assert first.endswith("run r1 suspended: sleep 'nap'  run_id=r1 status=suspended step_id=nap")


@pytest.mark.subprocess
def test_prune_and_a_worker_with_retention(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db) as client:
        for i in range(3):
            client.trigger("approval", {"title": f"t{i}"}, run_id=f"keep-{i}")
    pruned = tarry(db, "prune", "--older-than", "0s", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {"pruned": 0}  # nothing has ended
    bad = tarry(db, "prune", "--older-than", "soon")
    assert bad.returncode == 2
    assert "is not an age" in bad.stderr

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "worker", APP, "--retention", "0s"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        with Client(db) as client:
            client.trigger("ping", None, run_id="gone")
            client.signal("gone", "go", 1)  # it completes, then the worker prunes it
            client.cancel("keep-0")
            deadline = time.monotonic() + 15
            while {r.run_id for r in client.list_runs()} != {"keep-1", "keep-2"}:  # the worker's sweep, each second
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                time.sleep(0.05)
        logged = (tmp_path / "worker.log").read_text()
        assert "run gone completed" in logged
        assert "pruned" in logged
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()
