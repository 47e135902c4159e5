"""``tarry dashboard`` and ``tarry dev``: click commands the ``tarry`` CLI loads from the
``tarry.commands`` entry-point group (the engine never imports the dashboard)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shlex
import sys
from typing import Any

import click

from tarry import WorkflowError
from tarry.cli import CommandError, database, db_option

__all__ = ["dashboard", "dev"]

#: Where ``tarry dashboard --web`` listens unless told otherwise: this machine only.
WEB_HOST, WEB_PORT = "127.0.0.1", 8000


@click.command("dashboard")
@db_option
@click.option("--read-only", is_flag=True, help="Hide every action that changes a run: watch only.")
@click.option(
    "--approve", "approve", metavar="JSON", default='{"approved": true}', show_default=True, help="What `a` sends."
)
@click.option(
    "--reject", "reject", metavar="JSON", default='{"approved": false}', show_default=True, help="What `r` sends."
)
@click.option(
    "--web",
    is_flag=True,
    help="Serve the dashboard to browsers at http://HOST:PORT instead (pip install 'tarry[web]'); "
    "each browser tab runs a dashboard of its own. No authentication: keep it on loopback.",
)
@click.option("--host", default=WEB_HOST, show_default=True, help="With --web: the address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=WEB_PORT, show_default=True, help="With --web: the port."
)
@click.option(
    "--public-url",
    metavar="URL",
    help="With --web: the http(s):// address browsers reach it at, when not http://HOST:PORT (a proxy).",
)
@click.option("--as", "by", metavar="NAME", help="Who the audit trail records for every action. Default: USER@HOST.")
@click.pass_context
def dashboard(
    ctx: click.Context,
    read_only: bool,
    approve: str,
    reject: str,
    web: bool,
    host: str,
    port: int,
    public_url: str | None,
    by: str | None,
) -> None:
    """Watch and act on the runs of a database that a worker is running.

    Sees changes within 250 ms. Keys: 1-7 filter, / search, enter details, s signal,
    a approve, r reject, c cancel, R retry, t trigger, e engine, ? every key, q quit.
    With --web, the same dashboard in a browser (textual-serve), on 127.0.0.1:8000 unless
    --host/--port say otherwise; it warns on stderr when it listens beyond this machine.

    Example:

    \b
        tarry --db shop.db worker examples.publish_review:review &
        tarry --db shop.db dashboard --read-only
        tarry --db shop.db dashboard --web --port 8080
        tarry --db shop.db dashboard --as ana@example.com
    """
    from tarry import Client

    from .app import DashboardApp
    from .source import Source

    if not web:
        for name in ("host", "port", "public_url"):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name.replace('_', '-')} goes with --web")
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{public_url!r} is not an http:// or https:// URL", param_hint="--public-url")
    payloads = {}
    for name, text in (("approve", approve), ("reject", reject)):
        try:
            payloads[f"{name}_payload"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint=f"--{name}") from None
    try:
        target = str(database(ctx, create=False))  # DatabaseMissing: a dashboard never creates one
        if web:  # check the database here, once: each browser's dashboard opens its own
            Source.open(target).close()
        else:
            source: Any = target
            if by is not None:  # the dashboard's Client acts as NAME
                source = Source(Client(target, create=False, identity=by), owns=True)
            app = DashboardApp(source, read_only=read_only, **payloads)
    except WorkflowError as exc:
        raise CommandError(exc) from None
    if not web:
        app.run()
        return
    if os.path.exists(target):  # a file: the same one, whatever directory the server runs in
        target = os.path.abspath(target)
    flags = ["--read-only"] if read_only else []
    if by is not None:
        flags.append(f"--as={by}")
    for name, text in (("approve", approve), ("reject", reject)):
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            flags.append(f"--{name}={text}")
    _serve_web(served_command(target, flags), host, port, public_url)


def served_command(db: str, flags: list[str]) -> str:
    """The shell command textual-serve runs for each browser: this Python running
    ``tarry dashboard --db DB FLAGS``, every word quoted (textual-serve hands the command to
    a shell, and DB is whatever the user named)."""
    return shlex.join([sys.executable, "-m", "tarry.cli", "dashboard", f"--db={db}", *flags])


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the dashboard on this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _serve_web(command: str, host: str, port: int, public_url: str | None) -> None:
    try:
        from textual_serve.server import Server
    except ImportError:
        raise click.ClickException("--web needs textual-serve: pip install 'tarry[web]'") from None
    listen = f"[{host.strip('[]')}]" if ":" in host else host  # an IPv6 address, as a URL writes it
    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}, beyond this machine: anyone who reaches {listen}:{port} can act "
            "on runs (there is no authentication). Put it behind a proxy that authenticates, or use 127.0.0.1.",
            err=True,
        )
    sessions: set[asyncio.Task[Any]] = set()  # one per open browser tab

    class TarryServer(Server):
        """textual-serve's server, but for two things: its banner would print the command,
        and so a password in --db; and on SIGINT/SIGTERM it would wait for every open browser
        tab to leave (aiohttp's shutdown timeout, a minute) instead of ending their dashboards."""

        async def on_startup(self, app: Any) -> None:
            self.console.print(f"Serving the tarry dashboard on {self.public_url} (Ctrl+C stops it)")

        async def handle_websocket(self, request: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            sessions.add(task)
            try:
                return await super().handle_websocket(request)
            finally:
                sessions.discard(task)

        async def on_shutdown(self, app: Any) -> None:
            for task in sessions:  # each closes its socket and quits its dashboard
                task.cancel()

    server = TarryServer(
        command, host=host.strip("[]"), port=port, title="tarry", public_url=public_url or f"http://{listen}:{port}"
    )
    try:
        server.serve()
    except OSError as exc:  # the address is taken or not this machine's: one line, not a traceback
        raise click.ClickException(f"cannot listen on {listen}:{port}: {exc.strerror or exc}") from None


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
    from tarry.cli import load_app

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
