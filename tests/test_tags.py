"""Workflow tags: a run carries its workflow's tags from its creation, on every store, and
runs are listed by tag in the runtime and in a Client that has none of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from tarry import Client, InvalidArgument, SQLiteStore, Store, create_runtime, workflow
from tarry.cli import cli
from tarry.registry import describe
from tarry.store.postgres import PostgresStore
from tarry.store.sqlite import schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _charge(amount: int) -> int:
    return amount


@workflow("invoice", tags=["billing", "approval", "billing"])
async def invoice(ctx: Any) -> Any:
    await ctx.step("charge", _charge, 5)
    return await ctx.child("ledger", ledger, None)


@workflow("ledger", tags=["bill_ing"])  # "_" is a LIKE wildcard: it must match only itself
async def ledger(ctx: Any) -> Any:
    return "booked"


async def _plain_run(ctx: Any) -> Any:
    return "plain"


plain = workflow("plain")(_plain_run)


def test_tags_are_a_sorted_set_of_names() -> None:
    assert invoice.tags == ("approval", "billing")
    assert plain.tags == ()
    assert workflow("t", tags={"x"})(_plain_run).tags == ("x",)


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ("billing", "tags must be a list of names"),
        (["bill,ing"], "must not hold a comma"),
        ([""], "tag must be a non-empty string"),
        (["ok", "\x00"], "tag must not contain the character"),
        ([3], "tag must be a string"),
        ([f"t{i}" for i in range(17)], "at most 16 tags"),
    ],
)
def test_bad_tags_are_refused_naming_the_problem(tags: Any, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        workflow("bad", tags=tags)(_plain_run)
    assert problem in str(caught.value)
    assert "'bad'" in str(caught.value)


async def test_runs_carry_their_workflows_tags_and_are_listed_by_tag(store: Store) -> None:
    runtime = create_runtime(workflows=[invoice, ledger, plain], store=store)
    first = await runtime.trigger(invoice, None)
    await runtime.trigger(plain, None)
    assert first.tags == ("approval", "billing")
    child = await runtime.get_run(f"{first.run_id}:ledger")
    assert child.tags == ("bill_ing",)  # its own workflow's tags, not its parent's
    assert {r.workflow_id for r in await runtime.list_runs()} == {"invoice", "ledger", "plain"}
    assert [r.run_id for r in await runtime.list_runs(tag="billing")] == [first.run_id]
    assert [r.run_id for r in await runtime.list_runs(tag="approval", status="completed")] == [first.run_id]
    assert [r.workflow_id for r in await runtime.list_runs(tag="bill_ing")] == ["ledger"]
    assert await runtime.list_runs(tag="bill") == []  # a whole tag, not a part of one
    assert await runtime.list_runs(tag="billxing") == []
    # A retry from a step copies the run: the fork carries the tags too.
    fork = await runtime.retry(first.run_id, from_step="charge")
    assert fork.tags == ("approval", "billing")
    assert len(await runtime.list_runs(tag="billing")) == 2
    with pytest.raises(InvalidArgument, match="tag"):
        await runtime.list_runs(tag="")
    await runtime.aclose()


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
async def test_a_client_without_the_code_lists_and_counts_by_tag(
    store: Store, store_kind: str, db_path: Path, request: pytest.FixtureRequest
) -> None:
    runtime = create_runtime(workflows=[invoice, ledger, plain], store=store)
    tagged = await runtime.trigger(invoice, None)
    await runtime.trigger(plain, None)
    await runtime.aclose()
    target = request.getfixturevalue("postgres_url") if store_kind == "postgres" else db_path
    with Client(target) as client:
        assert [r.run_id for r in client.list_runs(tag="approval")] == [tagged.run_id]
        assert client.count(tag="billing") == 1
        assert client.count(tag="bill_ing") == 1
        assert client.count() == 3
        assert client.get_run(tagged.run_id).tags == ("approval", "billing")
        # A client that has the code tags the runs it triggers.
        with Client(target, workflows=[invoice, ledger, plain]) as coded:
            coded.trigger(invoice, None, run_id="from-client")
        assert client.get_run("from-client").tags == ("approval", "billing")
    # A client without the code tags its triggers from the registry a worker published.
    fresh: Store = PostgresStore(target) if store_kind == "postgres" else SQLiteStore(db_path)
    await fresh.open()
    published = [describe(invoice), describe(plain)]
    await trio.to_thread.run_sync(fresh.publish_workflows, published, "a-worker", 1.0)  # type: ignore[attr-defined]
    await fresh.close()
    with Client(target) as client:
        assert {w.id: w.tags for w in client.workflows()} == {"invoice": ("approval", "billing"), "plain": ()}
        client.trigger("invoice", None, run_id="by-id")
        assert client.get_run("by-id").tags == ("approval", "billing")
        assert client.count(tag="approval") == 3
        with pytest.raises(InvalidArgument, match="tag"):
            client.list_runs(tag="a\nb")


def test_the_run_tags_migration_is_appended(tmp_path: Path) -> None:
    names = [name for name, _ in schema.MIGRATIONS]
    assert names[-2:] == ["0009_audit_traces", "0010_run_tags"]
    assert schema.SCHEMA_VERSION == 10


def test_tarry_runs_filters_and_shows_tags(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    with Client(db, workflows=[invoice, ledger, plain]) as client:
        client.trigger(invoice, None, run_id="inv-1")
        client.trigger(plain, None, run_id="plain-1")
    listed = subprocess.run(
        [sys.executable, "-m", "tarry.cli", "--db", str(db), "runs", "--tag", "billing"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "TAGS" in listed.stdout
    assert "inv-1" in listed.stdout
    assert "approval,billing" in listed.stdout
    assert "plain-1" not in listed.stdout
    everything = CliRunner().invoke(cli, ["--db", str(db), "runs"], prog_name="tarry")
    assert "inv-1" in everything.output
    assert "plain-1" in everything.output
    as_json = json.loads(CliRunner().invoke(cli, ["--db", str(db), "runs", "-t", "approval", "--json"]).stdout)
    assert [(r["run_id"], r["tags"]) for r in as_json] == [("inv-1", ["approval", "billing"])]
    shown = CliRunner().invoke(cli, ["--db", str(db), "show", "inv-1"], prog_name="tarry")
    assert "Tags" in shown.output
    assert "approval, billing" in shown.output
    bad = CliRunner().invoke(cli, ["--db", str(db), "runs", "--tag", " "], prog_name="tarry")
    assert bad.exit_code == 2
    assert "InvalidArgument" in bad.output
    assert "tag" in bad.output


async def test_a_postgres_database_of_schema_6_is_migrated_to_the_current_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from tarry.store import postgres

    monkeypatch.setattr(postgres, "SCHEMA_VERSION", 6)
    monkeypatch.setattr(postgres, "_MIGRATIONS", {v: s for v, s in postgres._MIGRATIONS.items() if v <= 6})
    old = postgres.PostgresStore(postgres_url)
    await old.open()
    await old.close()
    monkeypatch.undo()
    store = postgres.PostgresStore(postgres_url)
    runtime = create_runtime(workflows=[invoice, ledger], store=store)
    first = await runtime.trigger(invoice, None)
    assert [r.run_id for r in await runtime.list_runs(tag="approval")] == [first.run_id]
    await runtime.aclose()
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SELECT value FROM tarry_meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(postgres.SCHEMA_VERSION),) == ("10",)
