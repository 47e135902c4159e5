"""The CLI refuses the wrong thing: a database that is not there, a workflow nobody serves,
a signal the run does not wait for (kept, and said so), an ambiguous run-id prefix, a
payload file that is not UTF-8, a timeout that is not a number of seconds.

Real SQLite files (and a real PostgreSQL server where the store's queries changed), click's
runner or real ``tarry`` processes.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from tarry import Client, InvalidArgument, RunNotFound, WorkflowNotFound, create_runtime
from tarry.cli import cli
from tarry.journal import prefix_range
from tarry.registry import describe
from tarry.store import store_from_url
from tarry.store.sqlite import statements

from . import workflows_cli

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.workflows_cli:runtime"

#: What each command needs besides --db to reach its database.
ARGS = {
    "cancel": ["0123456789ab"],
    "dashboard": ["--read-only"],
    "dev": ["examples.publish_review:review"],
    "info": [],
    "prune": ["--older-than", "1d"],
    "retry": ["0123456789ab"],
    "runs": [],
    "show": ["0123456789ab"],
    "signal": ["0123456789ab", "approve"],
    "trigger": ["approval", "--payload", '{"title": "t"}'],
    "workflows": [],
}


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="tarry", env=env, input=stdin)


def one_error_line(result: Result, type_name: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {type_name}: "), result.output
    return lines[0]


def published(db: Path | str) -> None:
    """Publish the test workflows' registry in ``db``, as a worker does when it starts."""
    with Client(db) as client:
        client.store.publish_workflows([describe(wf) for wf in workflows_cli.WORKFLOWS], "w:1:test", time.time())


def waiting_run(db: Path | str, run_id: str) -> None:
    """A run of ``approval`` that took its first step and now waits for ``approve``."""

    async def drive() -> None:
        runtime = create_runtime(workflows=workflows_cli.WORKFLOWS, store=store_from_url(db))
        async with runtime:
            result = await runtime.trigger("approval", {"title": "t"}, run_id=run_id)
            assert result.status == "suspended"

    trio.run(drive)


# -- --db before or after the command, TARRY_DB, and a database that is not there -----------------


@pytest.mark.parametrize("name", sorted(ARGS))
def test_every_command_takes_db_before_or_after_and_refuses_a_missing_one(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "expens.db"
    for args, env in [
        (["--db", str(missing), name, *ARGS[name]], None),
        ([name, *ARGS[name], "--db", str(missing)], None),
        ([name, *ARGS[name]], {"TARRY_DB": str(missing)}),
    ]:
        result = invoke(*args, env=env)
        assert result.exit_code == 2, (args, result.output)
        line = one_error_line(result, "DatabaseMissing")
        assert repr(str(missing)) in line
        assert "--create" in line  # the fix
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_db_after_the_command_wins_over_before_and_over_the_environment(tmp_path: Path) -> None:
    real, missing = tmp_path / "tarry.db", tmp_path / "typo.db"
    with Client(real) as client:
        client.trigger("x", None, run_id="run-in-real")
    for args, env in [
        (["--db", str(missing), "runs", "--db", str(real), "--json"], None),
        (["runs", "--db", str(real), "--json"], {"TARRY_DB": str(missing)}),
        (["runs", "--json"], {"TARRY_DB": str(real)}),
    ]:
        result = invoke(*args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert [r["run_id"] for r in json.loads(result.stdout)] == ["run-in-real"]
    assert not missing.exists()


@pytest.mark.subprocess
def test_a_worker_takes_db_after_the_command_and_creates_it(tmp_path: Path) -> None:
    db, log = tmp_path / "new.db", tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", "worker", APP, "--db", str(db)], cwd=ROOT, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            if db.exists():
                with Client(db, create=False) as client:
                    if client.engine_info().worker_pid == proc.pid:
                        break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_trigger_creates_the_database_only_when_asked(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    refused = invoke("trigger", "approval", "--db", str(db))
    assert refused.exit_code == 2
    assert not db.exists()
    made = invoke("trigger", "approval", "--db", str(db), "--create", "--json")
    assert made.exit_code == 0, made.output
    assert "no worker has published" in made.stderr  # nothing to check the id against: said so
    with Client(db, create=False) as client:
        assert [r.workflow_id for r in client.list_runs()] == ["approval"]


# -- a workflow nobody serves --------------------------------------------------------------------


def test_trigger_refuses_a_workflow_no_worker_published_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    published(db)
    refused = invoke("--db", str(db), "trigger", "aproval", "--payload", "{}")
    assert refused.exit_code == 2
    line = one_error_line(refused, "WorkflowNotFound")
    assert "'aproval'" in line
    assert "approval, chaos" in line  # the published ids
    assert "--force" in line
    with Client(db) as client:
        assert client.count() == 0

    forced = invoke("--db", str(db), "trigger", "aproval", "--payload", "{}", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert forced.stderr == ""
    assert json.loads(forced.stdout)["workflow_id"] == "aproval"
    known = invoke("--db", str(db), "trigger", "approval", "--payload", '{"title": "t"}')
    assert (known.exit_code, known.stderr) == (0, "")
    with Client(db) as client:
        assert sorted(r.workflow_id for r in client.list_runs()) == ["approval", "aproval"]
        with pytest.raises(WorkflowNotFound, match="published: approval"):
            client.trigger("aproval")
        assert client.trigger("aproval", {"x": 1}, force=True).workflow_id == "aproval"


# -- signals: delivered, buffered (with a warning), deduplicated ------------------------------------


def test_a_signal_the_run_does_not_wait_for_is_kept_and_warned_about(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    run_id = "0193a4b5c6d7e8f90123456789abcdef"
    waiting_run(db, run_id)

    typo = invoke("--db", str(db), "signal", run_id, "aprove", "--payload", '{"approved": true}', "--json")
    assert typo.exit_code == 0, typo.output
    assert "waits for 'approve', not 'aprove'" in typo.stderr
    assert "not dropped" in typo.stderr
    out = json.loads(typo.stdout)
    assert (out["delivery"], out["status"]) == ("buffered", "suspended")
    with Client(db) as client:
        assert [(s.event, s.consumed_by) for s in client.get_run(run_id).signals] == [("aprove", None)]

    right = invoke("--db", str(db), "signal", run_id[:12], "approve", "-p", '{"approved": true}', "--dedup-key", "k")
    assert right.exit_code == 0, right.output
    assert right.stderr == ""
    assert f"Sent 'approve' to run {run_id}." in right.stdout
    again = invoke("--db", str(db), "signal", run_id[:12], "approve", "-p", '{"approved": true}', "--dedup-key", "k")
    assert again.exit_code == 0, again.output
    assert "not sent again" in again.stdout
    dedup = invoke(
        "--db", str(db), "signal", run_id, "approve", "-p", '{"approved": true}', "--dedup-key", "k", "--json"
    )
    assert json.loads(dedup.stdout)["delivery"] == "deduplicated"


def test_send_signal_says_what_became_of_it(tmp_path: Path, store_db: Path | str) -> None:
    waiting_run(store_db, "sig-run")
    with Client(store_db) as client:
        buffered = client.send_signal("sig-run", "aprove", 1)
        assert (buffered.delivery, buffered.waiting_for) == ("buffered", ["approve"])
        delivered = client.send_signal("sig-run", "approve", {"approved": False}, dedup_key="d")
        assert (delivered.delivery, delivered.waiting_for) == ("delivered", ["approve"])
        repeat = client.send_signal("sig-run", "approve", {"approved": False}, dedup_key="d")
        assert (repeat.delivery, repeat.signal_id) == ("deduplicated", delivered.signal_id)
        assert client.signal("sig-run", "approve", {"approved": False}, dedup_key="d") is False
        assert [s.event for s in client.get_run("sig-run").signals] == ["aprove", "approve"]
        running = client.trigger("approval", {"title": "t"}, run_id="not-waiting-yet")
        early = client.send_signal(running.run_id, "approve", 1)
        assert (early.delivery, early.waiting_for) == ("buffered", [])


# -- run-id prefixes ---------------------------------------------------------------------------------

IDS = [
    "01a2b3c4d5e6aaaa",
    "01a2b3c4d5e6bbbb",
    "01a2b3ffffff",
    "o_1",
    "o_10",
    "ab%_cd01",
    "abXYcd01",
    "xxxxx\U0010ffffy",
]


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "tarry.db"


def test_resolve_run_id_takes_a_unique_prefix(store_db: Path | str) -> None:
    with Client(store_db) as client:
        for run_id in IDS:
            client.trigger("x", None, run_id=run_id)
        assert client.resolve_run_id("01a2b3c4d5e6a") == "01a2b3c4d5e6aaaa"
        assert client.resolve_run_id("01a2b3f") == "01a2b3ffffff"
        assert client.resolve_run_id("o_1") == "o_1"  # a whole id, shorter than a prefix may be
        assert client.resolve_run_id("ab%_cd") == "ab%_cd01"  # no LIKE wildcards
        assert client.resolve_run_id("xxxxx\U0010ffff") == "xxxxx\U0010ffffy"
        with pytest.raises(InvalidArgument, match="ambiguous") as ambiguous:
            client.resolve_run_id("01a2b3c4")
        assert ambiguous.value.candidates == ["01a2b3c4d5e6aaaa", "01a2b3c4d5e6bbbb"]  # type: ignore[attr-defined]
        with pytest.raises(RunNotFound, match="at least 6 characters"):
            client.resolve_run_id("01a2b")
        with pytest.raises(RunNotFound, match="nor one whose id starts with it"):
            client.resolve_run_id("ffffff")
        with pytest.raises(InvalidArgument):
            client.resolve_run_id("")


def test_prefix_range_bounds_exactly_the_strings_that_start_with_it() -> None:
    assert prefix_range("01a2") == ("01a2", "01a3")
    assert prefix_range("a\ud7ff") == ("a\ud7ff", "a\ue000")  # over the surrogates
    assert prefix_range("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_range("\U0010ffff") == ("\U0010ffff", None)


def test_the_sqlite_prefix_lookup_is_a_seek_on_the_primary_key(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    Client(db).close()
    conn = sqlite3.connect(db)
    query = statements.RUN_IDS_FROM.format(below=" AND run_id < ?")
    plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {query}", ("a", "b", 11)))
    conn.close()
    assert "SEARCH runs USING COVERING INDEX sqlite_autoindex_runs_1 (run_id>? AND run_id<?)" in plan


def test_the_postgres_prefix_lookup_is_a_seek_whatever_the_collation(postgres_url: str) -> None:
    import psycopg

    from tarry.store import postgres

    Client(postgres_url).close()
    query = postgres.RUN_IDS_FROM.format(below=' AND run_id COLLATE "C" < %s')
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = " ".join(r[0] for r in conn.execute(f"EXPLAIN {query}", ("a", "b", 11)))
    assert "tarry_runs_id_c" in plan, plan


def test_the_cli_takes_run_id_prefixes(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db) as client:
        for run_id in IDS[:3]:
            client.trigger("x", None, run_id=run_id)
    shown = invoke("--db", str(db), "show", "01a2b3c4d5e6a", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["run_id"] == "01a2b3c4d5e6aaaa"
    cancelled = invoke("--db", str(db), "cancel", "01a2b3f", "--json")
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["run_id"] == "01a2b3ffffff"
    ambiguous = invoke("--db", str(db), "retry", "01a2b3c4d5")
    assert ambiguous.exit_code == 2
    assert "01a2b3c4d5e6aaaa, 01a2b3c4d5e6bbbb" in one_error_line(ambiguous, "InvalidArgument")
    short = invoke("--db", str(db), "signal", "01a2b", "approve")
    assert short.exit_code == 2
    assert "at least 6 characters" in one_error_line(short, "RunNotFound")
    # main's wait and delete too: no worker serves the file, so the cancel is not applied yet
    waited = invoke("--db", str(db), "wait", "01a2b3f", "--timeout", "0")
    assert waited.exit_code == 3, waited.output
    assert "Error: WaitTimeout: run '01a2b3ffffff'" in waited.stderr
    deleted = invoke("--db", str(db), "delete", "01a2b3f")
    assert deleted.exit_code == 1, deleted.output  # not ended: refused, but found by its prefix
    assert "01a2b3ffffff" in deleted.stderr


def test_send_signal_records_its_sender_as_signal_does(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db, identity="ops@host") as client:
        run_id = client.trigger("x", None).run_id
        assert client.send_signal(run_id, "approve", 1, by="ana@example.com").delivery == "buffered"
        client.send_signal(run_id, "approve", 2)
    sent = invoke("--db", str(db), "signal", run_id, "approve", "--payload", "3", "--as", "bo@example.com", "--json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["delivery"] == "buffered"
    with Client(db) as client:
        senders = [s.sent_by for s in client.get_run(run_id).signals]
    assert senders == ["ana@example.com", "ops@host", "bo@example.com"]


# -- the two slips ---------------------------------------------------------------------------------


def test_a_payload_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    (tmp_path / "latin1.json").write_bytes('{"title": "caf\u00e9"}'.encode("latin-1"))
    result = invoke("--db", str(db), "trigger", "approval", "--create", "--payload-file", str(tmp_path / "latin1.json"))
    assert result.exit_code == 2, result.output
    assert "not UTF-8" in one_error_line(result, "InvalidArgument")
    piped = invoke("--db", str(db), "trigger", "approval", "--create", "--payload", "-", stdin=b"\xff{}")
    assert piped.exit_code == 2, piped.output
    assert "not UTF-8" in one_error_line(piped, "InvalidArgument")
    assert not db.exists()


@pytest.mark.parametrize("timeout", ["-1", "nan", "inf", "soon"])
def test_a_bad_timeout_is_refused_before_anything_is_written(tmp_path: Path, timeout: str) -> None:
    db = tmp_path / "tarry.db"
    result = invoke("--db", str(db), "trigger", "approval", "--create", "--wait", "--timeout", timeout)
    assert result.exit_code == 2, result.output
    assert "--timeout" in result.stderr
    assert not db.exists()
