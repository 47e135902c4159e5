"""``tarry dashboard`` and ``tarry dev``: click commands the ``tarry`` CLI loads from the
``tarry.commands`` entry-point group (the engine never imports the dashboard)."""

from __future__ import annotations

import json
from typing import Any

import click

from engine import WorkflowError

__all__ = ["dashboard", "dev"]


def _db(ctx: click.Context, db: str | None) -> str:
    """``--db`` given here, else the ``tarry`` group's ``--db`` (or ``TARRY_DB``)."""
    if db:
        return db
    for parent in (ctx.parent, ctx.find_root()):
        value = parent.params.get("db") if parent is not None else None
        if value:
            return str(value)
    obj: Any = ctx.find_object(dict)
    if obj and obj.get("db"):
        return str(obj["db"])
    raise click.UsageError("no database: pass --db PATH or set TARRY_DB")


@click.command("dashboard")
# A plain string, not click.Path: that would fold the "//" of a postgresql:// URL.
@click.option(
    "--db",
    envvar="TARRY_DB",
    metavar="PATH|URL",
    help="The tarry database: a SQLite file or a postgresql:// URL (env TARRY_DB).",
)
@click.option("--read-only", is_flag=True, help="Hide every action that changes a run: watch only.")
@click.option(
    "--approve", "approve", metavar="JSON", default='{"approved": true}', show_default=True, help="What `a` sends."
)
@click.option(
    "--reject", "reject", metavar="JSON", default='{"approved": false}', show_default=True, help="What `r` sends."
)
@click.option("--as", "by", metavar="NAME", help="Who the audit trail records for every action. Default: USER@HOST.")
@click.pass_context
def dashboard(ctx: click.Context, db: str | None, read_only: bool, approve: str, reject: str, by: str | None) -> None:
    """Watch and act on the runs of a database that a worker is running.

    Sees changes within 250 ms. Keys: 1-7 filter, / search, enter details, s signal,
    a approve, r reject, c cancel, R retry, t trigger, e engine, ? every key, q quit.

    Example:

    \b
        tarry --db shop.db worker shop.workflows:runtime &
        tarry dashboard --db shop.db --read-only
        tarry dashboard --db shop.db --as ana@example.com
    """
    from engine import Client

    from .app import DashboardApp
    from .source import Source

    payloads = {}
    for name, text in (("approve", approve), ("reject", reject)):
        try:
            payloads[f"{name}_payload"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint=f"--{name}") from None
    try:
        target: Any = _db(ctx, db)
        if by is not None:  # the dashboard's Client acts as NAME
            target = Source(Client(target, create=False, identity=by), owns=True)
        app = DashboardApp(target, read_only=read_only, **payloads)
    except WorkflowError as exc:
        raise click.ClickException(exc.message) from None
    app.run()


@click.command("dev")
@click.argument("app")
# A plain string, not click.Path: that would fold the "//" of a postgresql:// URL.
@click.option(
    "--db",
    envvar="TARRY_DB",
    metavar="PATH|URL",
    help="The tarry database: a SQLite file or a postgresql:// URL (env TARRY_DB).",
)
@click.pass_context
def dev(ctx: click.Context, app: str, db: str | None) -> None:
    """Run the workflows of APP and the dashboard in one process, for development.

    APP is MODULE:ATTR naming a Runtime, a workflow or a list of workflows, or a bare
    MODULE (as for ``tarry worker``). Quitting drains the worker and stops it cleanly:
    sleeping and waiting runs stay in the database for the next worker.

    Example:

    \b
        tarry dev examples.publish_review:review --db dev.db
    """
    from engine.cli import load_app

    from .dev import DevApp

    try:
        loaded = load_app(app)
    except WorkflowError as exc:
        raise click.BadParameter(exc.message, param_hint="APP") from None
    try:
        dev_app = DevApp(loaded, _db(ctx, db))
    except WorkflowError as exc:
        raise click.ClickException(exc.message) from None
    dev_app.run()
