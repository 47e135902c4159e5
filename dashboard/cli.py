"""``tarry dashboard`` and ``tarry dev``: click commands the ``tarry`` CLI loads from the
``tarry.commands`` entry-point group (the engine never imports the dashboard)."""

from __future__ import annotations

import json

import click

from engine import WorkflowError
from engine.cli import CommandError, database, db_option

__all__ = ["dashboard", "dev"]


@click.command("dashboard")
@db_option
@click.option("--read-only", is_flag=True, help="Hide every action that changes a run: watch only.")
@click.option(
    "--approve", "approve", metavar="JSON", default='{"approved": true}', show_default=True, help="What `a` sends."
)
@click.option(
    "--reject", "reject", metavar="JSON", default='{"approved": false}', show_default=True, help="What `r` sends."
)
@click.pass_context
def dashboard(ctx: click.Context, read_only: bool, approve: str, reject: str) -> None:
    """Watch and act on the runs of a database that a worker is running.

    Sees changes within 250 ms. Keys: 1-7 filter, / search, enter details, s signal,
    a approve, r reject, c cancel, R retry, t trigger, e engine, ? every key, q quit.

    Example:

    \b
        tarry --db shop.db worker examples.publish_review:review &
        tarry --db shop.db dashboard --read-only
    """
    from .app import DashboardApp

    payloads = {}
    for name, text in (("approve", approve), ("reject", reject)):
        try:
            payloads[f"{name}_payload"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint=f"--{name}") from None
    try:
        app = DashboardApp(database(ctx, create=False), read_only=read_only, **payloads)
    except WorkflowError as exc:
        raise CommandError(exc) from None
    app.run()


@click.command("dev")
@db_option
@click.argument("app")
@click.option("--create", is_flag=True, help="Create the database if it does not exist (else: refused, exit 2).")
@click.pass_context
def dev(ctx: click.Context, app: str, create: bool) -> None:
    """Run the workflows of APP and the dashboard in one process, for development.

    APP is MODULE:ATTR naming a Runtime, a workflow or a list of workflows, or a bare
    MODULE (as for ``tarry worker``). Quitting drains the worker and stops it cleanly:
    sleeping and waiting runs stay in the database for the next worker.

    Example:

    \b
        tarry --db dev.db dev examples.publish_review:review --create
    """
    from engine.cli import load_app

    from .dev import DevApp

    try:
        loaded = load_app(app)
    except WorkflowError as exc:
        raise click.BadParameter(exc.message, param_hint="APP") from None
    try:
        dev_app = DevApp(loaded, database(ctx, create=create))
    except WorkflowError as exc:
        raise CommandError(exc) from None
    dev_app.run()
