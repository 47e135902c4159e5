"""The ``tarry`` command: a worker daemon, and the verbs of :class:`tarry.Client` for a shell.

Every command but ``worker`` and ``dashboard`` opens a :class:`tarry.Client` on ``--db``
(env ``TARRY_DB``, default ``./tarry.db``; before or after the command, :func:`db_option`),
calls one verb and prints the result: a table by default, JSON with ``--json`` (the keys are
the field names of ``RunResult`` / ``RunInfo``, as their ``to_dict()`` gives them). A
database that does not exist is refused, never created, but by ``worker`` and
``trigger --create``. ``RUN`` is a run id or a unique prefix of one
(:meth:`tarry.Client.resolve_run_id`).

Exit codes:

- ``0``: done.
- ``1``: the operation or the run failed: a ``trigger/signal/retry --wait`` whose run ended
  ``failed`` or ``cancelled``; ``RunStateError`` (``RunFinished``: signal or cancel of an
  ended run; ``RunNotRetryable``; ``RunAlreadyExists``), ``WaitTimeout``, ``StoreBusy``,
  ``LeaseLost`` and any other ``WorkflowError``.
- ``3``: ``tarry wait`` gave up: the run had not ended within ``--timeout``.
- ``2``: the input was wrong: usage errors, malformed JSON, ``InvalidInput``
  (``PayloadValidationError``, ``InvalidArgument``, ``NotSerializable``), ``NotFound``
  (``WorkflowNotFound``, ``RunNotFound``), and a ``--db`` that is not a tarry database
  (``NotATarryDatabase``), is from a newer tarry (``SchemaTooNew``), is damaged
  (``DatabaseCorrupt``), cannot be written (``DatabaseReadOnly``) or does not exist for a
  read (``DatabaseMissing``). A full disk (``DiskFull``) is 1: the operation failed.
- ``130`` / ``143`` (``128 +`` SIGINT / SIGTERM): ``tarry worker`` stopped on that signal
  leaving runs mid-step (its grace ran out, or a second signal); they stay ``running`` for
  the next worker. After a clean drain it exits 0.

Expected errors print one line, ``Error: <TypeName>: <message>``, on stderr (and
``{"error": {"code", "type", "message", ...}}`` on stdout with ``--json``); anything else is
a bug and shows its traceback.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from . import __version__
from .client import Client, EngineInfo, WorkflowInfo
from .errors import (
    DatabaseCorrupt,
    DatabaseMissing,
    DatabaseReadOnly,
    InvalidArgument,
    InvalidInput,
    NotATarryDatabase,
    NotFound,
    SchemaTooNew,
    WaitTimeout,
    WorkflowError,
)
from .journal import STATUSES
from .results import HistoryEntry, RunInfo, RunResult
from .runtime import Runtime, create_runtime
from .store import MemoryStore, SharedStore, is_url, store_from_url
from .workflow import Workflow

if TYPE_CHECKING:
    from rich.console import Console

    from .metrics import MetricsServer
    from .worker import Worker

__all__ = ["CommandError", "cli", "database", "db_option", "exit_code", "load_app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
_INPUT_ERRORS = (
    InvalidInput,
    NotFound,
    NotATarryDatabase,
    SchemaTooNew,
    DatabaseMissing,
    DatabaseCorrupt,
    DatabaseReadOnly,
)
_STATUS_STYLE = {
    "running": "cyan",
    "suspended": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "retrying": "yellow",
}


def exit_code(error: WorkflowError) -> int:
    """2 for bad input (the caller's to fix), 1 for an operation that could not be done."""
    return EXIT_USAGE if isinstance(error, _INPUT_ERRORS) else EXIT_FAILED


# -- the application: module:attribute -----------------------------------------------------------


def load_app(spec: str) -> Runtime | list[Workflow[Any]]:
    """What ``APP`` names: ``module:attribute`` (a Runtime, a Workflow, or a list of
    workflows; the attribute may be dotted) or a bare ``module`` (its one Runtime, else every
    Workflow it defines). The current directory is importable, as with ``python -m``.

    Raises:
        InvalidArgument: the module cannot be found, the attribute does not exist, or it
            names something else.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise InvalidArgument(f"APP must be 'module:attribute' or 'module', not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module exists and one of its own imports failed: show the traceback
        raise InvalidArgument(f"cannot import {module_name!r} for APP {spec!r}: {exc}", app=spec) from None
    if attribute:
        target: Any = module
        for part in attribute.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise InvalidArgument(f"module {module_name!r} has no attribute {attribute!r}", app=spec) from None
    else:
        values = list(vars(module).values())
        runtimes = [v for v in values if isinstance(v, Runtime)]
        if len(runtimes) > 1:
            raise InvalidArgument(f"module {module_name!r} defines several runtimes; name one: {module_name}:NAME")
        target = runtimes[0] if runtimes else list({id(v): v for v in values if isinstance(v, Workflow)}.values())
    if isinstance(target, Runtime):
        return target
    if isinstance(target, Workflow):
        return [target]
    if isinstance(target, list | tuple | set | frozenset) and target and all(isinstance(w, Workflow) for w in target):
        return list(target)
    raise InvalidArgument(
        f"APP {spec!r} names {type(target).__name__ if target != [] else 'no workflows'}; it must name a Runtime, "
        "a workflow or a list of workflows",
        app=spec,
    )


def _app_workflows(spec: str) -> list[Workflow[Any]]:
    app = load_app(spec)
    return list(app.workflows.values()) if isinstance(app, Runtime) else app


# -- shared plumbing ----------------------------------------------------------------------------------


def _target(value: str | Path) -> str | Path:
    """``--db`` as a store target: a ``postgresql://`` URL as it is, else a file's path."""
    return str(value) if is_url(str(value)) else Path(value)


_DB_KEY, _DB_GIVEN_KEY = "tarry.db", "tarry.db_given"
DEFAULT_DB = "./tarry.db"


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--db PATH|URL`` (env ``TARRY_DB``), the same on the ``tarry`` group and on every
    command (plugins' too), so it may come before or after the subcommand; given after,
    it wins. Read it with :func:`database`."""

    def remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        source = ctx.get_parameter_source(param.name or "db")
        if value is not None and (source is ParameterSource.COMMANDLINE or _DB_KEY not in ctx.meta):
            ctx.meta[_DB_KEY] = value  # meta is one dict for the group and its subcommand
            ctx.meta[_DB_GIVEN_KEY] = source is not ParameterSource.DEFAULT

    return click.option(
        "--db",
        # A plain string: click.Path would fold the "//" of a postgresql:// URL.
        type=str,
        envvar="TARRY_DB",
        show_envvar=True,
        metavar="PATH|URL",
        expose_value=False,
        callback=remember,
        help="The database: a SQLite file (default ./tarry.db), or postgresql://user@host/db "
        "(pip install 'tarry[postgres]'). Before or after the command.",
    )(fn)


def database(ctx: click.Context, *, create: bool = True) -> str | Path:
    """What ``--db`` / ``TARRY_DB`` names (``./tarry.db`` when neither is given), as a store
    target. With ``create=False``, a SQLite file that does not exist is refused.

    Raises:
        DatabaseMissing: no such file, and ``create`` is false (nothing is created).
    """
    target = _target(ctx.meta.get(_DB_KEY) or DEFAULT_DB)
    if not create and isinstance(target, Path) and not target.exists():
        raise DatabaseMissing(str(target))
    return target


def _db_given(ctx: click.Context) -> bool:
    """Whether ``--db`` or ``TARRY_DB`` named the database (not the default)."""
    return bool(ctx.meta.get(_DB_GIVEN_KEY))


class _State:
    def __init__(self, app: str | None) -> None:
        self.app = app

    @property
    def db(self) -> str | Path:
        return database(click.get_current_context())

    @contextmanager
    def client(self, *, create: bool = False) -> Iterator[Client]:
        """A Client on ``--db``; a database that does not exist is refused unless ``create``."""
        db = database(click.get_current_context(), create=create)
        workflows = _app_workflows(self.app) if self.app else None
        client = Client(db, workflows=workflows, create=create)
        try:
            yield client
        finally:
            client.close()


#: Entry-point group of commands other packages add (the dashboard's ``dashboard`` and ``dev``).
PLUGIN_GROUP = "tarry.commands"


@functools.cache
def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}


class _Group(click.Group):
    """Adds the commands of the ``tarry.commands`` entry points (loaded when used or listed)
    and turns the engine's expected errors into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _plugins().get(cmd_name)
        if entry is not None:
            try:
                command = entry.load()
            except ImportError:  # its package is not installed: the built-in stand-in, if any
                command = None
            if isinstance(command, click.Command):
                return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WorkflowError as exc:
            if ctx.meta.get("tarry.json"):
                click.echo(json.dumps({"error": exc.to_dict()}, default=str, ensure_ascii=False))
            click.echo(f"Error: {type(exc).__name__}: {exc.message}", err=True)
            ctx.exit(exit_code(exc))
        except UnicodeEncodeError as exc:  # an argv byte that is not UTF-8 arrives as a lone surrogate
            bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else "?"
            click.echo(
                f"Error: InvalidArgument: an argument holds {bad!r}, which is not UTF-8 text "
                "(a byte the terminal's encoding could not decode)",
                err=True,
            )
            ctx.exit(EXIT_USAGE)


class CommandError(click.ClickException):
    """A :class:`WorkflowError` as a command's failure: one line, ``Error: <TypeName>:
    <message>``, and :func:`exit_code`'s status (for commands that run outside the
    ``tarry`` group too, as the dashboard's do)."""

    def __init__(self, error: WorkflowError) -> None:
        super().__init__(f"{type(error).__name__}: {error.message}")
        self.exit_code = exit_code(error)  # type: ignore[misc]  # click reads it per instance


def _json_flag(fn: Callable[..., Any]) -> Callable[..., Any]:
    def remember(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
        ctx.meta["tarry.json"] = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=remember,
        expose_value=True,
        is_eager=True,
        help="Print JSON (keys: the RunResult/RunInfo field names) instead of a table.",
    )(fn)


def _payload_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--payload-file",
        type=click.File("rb"),
        help="Read the payload's JSON (UTF-8) from a file ('-': standard input).",
    )(fn)
    return click.option(
        "--payload", "-p", metavar="JSON", help="The payload as JSON text ('-': read it from standard input)."
    )(fn)


def _read_payload(text: str | None, file: IO[bytes] | None) -> Any:
    if text is not None and file is not None:
        raise click.UsageError("give the payload once: --payload or --payload-file")
    source = "--payload" if text is not None else "--payload-file"
    if text == "-":
        file, text = sys.stdin.buffer, None
    if file is not None:
        data = file.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            name = getattr(file, "name", "-")
            raise InvalidArgument(
                f"{source} {name if isinstance(name, str) else '-'} is not UTF-8 text: byte "
                f"0x{data[exc.start]:02x} at offset {exc.start}; save the JSON as UTF-8"
            ) from None
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{source} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{source} nests arrays or objects too deeply to read") from None


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """A finite number of seconds, 0 or more (refused before anything is written)."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 0 <= seconds < float("inf"):
            self.fail(f"{value!r} is not a number of seconds: give a finite number, 0 or more", param, ctx)
        return seconds


def _as_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--as",
        "by",
        metavar="NAME",
        help="Who asks, for the audit trail (tarry show). Default: USER@HOST.",
    )(fn)


def _wait_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--timeout", type=_Seconds(), metavar="SECONDS", help="With --wait: give up after this long (exit 1)."
    )(fn)
    return click.option(
        "--wait",
        is_flag=True,
        help="Wait until the run suspends or ends (tarry wait RUN: until it ends); exit 1 if it failed or was cancelled.",
    )(fn)


def _complete_runs(ctx: click.Context, _: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        with Client(database(ctx, create=False), create=False) as client:
            runs = client.list_runs(limit=50, search=incomplete or None)
    except Exception:  # completion must never fail loudly
        return []
    return [
        CompletionItem(r.run_id, help=f"{r.workflow_id} {r.status}") for r in runs if r.run_id.startswith(incomplete)
    ]


def _complete_workflows(ctx: click.Context, _: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        with Client(database(ctx, create=False), create=False) as client:
            found = client.workflows()
    except Exception:  # completion must never fail loudly
        return []
    return [CompletionItem(w.id, help=w.description or "") for w in found if w.id.startswith(incomplete)]


def _warn_without_worker(client: Client) -> None:
    if not client.engine_info().worker_alive:
        click.echo(f"No worker serves {client.path} now: waiting for one to run it (tarry worker APP).", err=True)


def _finish(result: RunResult, waited: bool) -> None:
    if waited and result.status in ("failed", "cancelled"):
        click.get_current_context().exit(EXIT_FAILED)


# -- rendering ----------------------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(shutil.get_terminal_size((160, 24)).columns, 160)
    return console


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _when(dt: datetime | None, *, relative: bool = True) -> str:
    if dt is None:
        return "-"
    text = dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if not relative:
        return text
    delta = (dt - datetime.now(UTC)).total_seconds()
    return f"{text} ({'in ' + _span(delta) if delta > 0 else _span(delta) + ' ago'})"


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _pending(pending: dict[str, Any] | None) -> str:
    if not pending:
        return ""
    if pending.get("kind") == "sleep":
        return f"sleep {pending.get('step')!r} until {_when(pending.get('wake_at'))}"
    if pending.get("kind") == "event":
        deadline = pending.get("deadline")
        until = f", deadline {_when(deadline)}" if deadline else ", no deadline"
        names = " or ".join(repr(e) for e in pending.get("events") or [pending.get("event")])
        return f"event {names} (step {pending.get('step')!r}){until}"
    if pending.get("kind") == "retry":
        return f"retry: attempt {pending.get('attempt')} of step {pending.get('step')!r} at {_when(pending.get('wake_at'))}"
    if pending.get("kind") == "child":
        return f"child run {pending.get('child_run_id')} (step {pending.get('step')!r})"
    if pending.get("kind") == "queued":
        return f"a place (max_concurrent {pending.get('max_concurrent')})"
    return _short(pending)


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _runs_table(runs: list[RunResult]) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    from rich.markup import escape

    for name in ("RUN", "WORKFLOW", "TAGS", "STATUS", "LAST STEP", "WAITING FOR", "CREATED", "UPDATED"):
        table.add_column(name, no_wrap=name in ("RUN", "STATUS"), overflow="fold")
    now = datetime.now(UTC)
    for r in runs:
        updated = _span((now - r.updated_at).total_seconds()) + " ago" if r.updated_at else "-"
        table.add_row(
            r.run_id,
            r.workflow_id,
            escape(",".join(r.tags)),
            _status(r.status),
            r.last_step or "",
            _pending(r.pending),
            _when(r.created_at, relative=False),
            updated,
        )
    return table


def _print_result(
    result: RunResult, as_json: bool, headline: str | None = None, extra: dict[str, Any] | None = None
) -> None:
    if as_json:
        _echo_json({**result.to_dict(), **(extra or {})})
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    if headline:
        console.print(headline)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Run", result.run_id)
    grid.add_row("Workflow", result.workflow_id)
    grid.add_row("Status", _status(result.status))
    if result.pending:
        grid.add_row("Waiting for", escape(_pending(result.pending)))
    if result.output is not None:
        grid.add_row("Output", escape(_short(result.output, 400)))
    if result.error is not None:
        grid.add_row("Error", escape(f"{result.error.type}: {result.error.message}"))
    console.print(grid)


def _detail(entry: HistoryEntry) -> str:
    d = entry.detail
    if entry.kind == "step":
        failures = "".join(
            f"attempt {f['attempt']}: {f['type']}: {f['message']}\n" for f in entry.failures if entry.status != "failed"
        )
        if entry.status == "retrying":
            return failures + f"next attempt {_when(d.get('next_at'), relative=False)}"
        if entry.error is not None:
            earlier = "".join(f"attempt {f['attempt']}: {f['type']}: {f['message']}\n" for f in entry.failures[:-1])
            return earlier + f"{entry.error.type}: {entry.error.message}"
        return failures + _short(entry.output)
    if entry.kind == "child":
        text = f"child run {d.get('child_run_id')} ({d.get('workflow_id')})"
        if entry.status == "waiting":
            return text + ": running"
        if entry.error is not None:
            return f"{text}: {entry.error.type}: {entry.error.message}"
        return text + (f": {_short(entry.output)}" if d.get("wait") else ": started")
    if entry.kind == "patch":
        return f"took the new code of patch {entry.step_id.removeprefix('patch:')!r}"
    if entry.kind == "sleep":
        return f"until {_when(d.get('wake_at'), relative=False)}"
    if entry.kind == "event":
        text = f"event {d.get('event')!r}"
        if d.get("events"):
            text = "events " + " or ".join(repr(e) for e in d["events"])
            if d.get("received"):
                text += f", got {d['received']!r}"
        if entry.status == "waiting":
            deadline = d.get("deadline")
            return text + (f", deadline {_when(deadline, relative=False)}" if deadline else "")
        if d.get("timed_out"):
            return text + ": timed out"
        sender = f" (from {d['sent_by']})" if d.get("sent_by") else ""
        return f"{text}: {_short(entry.output)}{sender}"
    return _short(entry.output)


def _print_info(info: RunInfo) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Run", info.run_id)
    grid.add_row("Workflow", info.workflow_id)
    if info.tags:
        grid.add_row("Tags", escape(", ".join(info.tags)))
    grid.add_row("Status", _status(info.status) + (f" (attempt {info.attempt})" if info.attempt > 1 else ""))
    grid.add_row("Created", _when(info.created_at))
    grid.add_row("Updated", _when(info.updated_at))
    if info.pending:
        grid.add_row("Waiting for", escape(_pending(info.pending)))
    grid.add_row("Payload", escape(_short(info.payload, 400)))
    if info.output is not None:
        grid.add_row("Output", escape(_short(info.output, 400)))
    if info.error is not None:
        step = f" (step {info.error.step_id!r})" if info.error.step_id else ""
        grid.add_row("Error", escape(f"{info.error.type}: {info.error.message}{step}"))
    if info.cancel_reason:
        grid.add_row("Cancel reason", escape(info.cancel_reason))
    if info.parent_run_id:
        grid.add_row("Parent run", info.parent_run_id)
    if info.forked_from:
        grid.add_row("Forked from", info.forked_from)
    if info.children:
        grid.add_row("Child runs", ", ".join(info.children))
    if info.audit:
        trail = "\n".join(
            f"{a.action} by {a.by}, {_when(a.at, relative=False)}"
            + (f" ({', '.join(f'{k}: {v}' for k, v in a.detail.items() if v is not None)})" if a.detail else "")
            for a in info.audit
        )
        grid.add_row("Audit", escape(trail))
    console.print(grid)
    console.print()
    timeline = Table(title="Timeline", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name in ("#", "STARTED", "KIND", "STEP", "STATUS", "TRIES", "TOOK", "DETAIL"):
        timeline.add_column(name, overflow="fold", no_wrap=name in ("#", "STARTED"))
    for e in info.history:
        took = _span((e.finished_at - e.started_at).total_seconds()) if e.finished_at else "…"
        timeline.add_row(
            str(e.seq),
            _when(e.started_at, relative=False),
            e.kind,
            escape(e.step_id),
            _status(e.status) if e.status != "waiting" else "[yellow]waiting[/]",
            str(e.attempts),
            took,
            escape(_detail(e)),
        )
    if not info.history:
        timeline.add_row("", "", "", "(no entries yet)", "", "", "", "")
    console.print(timeline)
    if info.signals:
        console.print()
        signals = Table(title="Signals", title_justify="left", box=None, header_style="bold", pad_edge=False)
        for name in ("ID", "EVENT", "SENT", "SENT BY", "TAKEN BY", "PAYLOAD"):
            signals.add_column(name, overflow="fold")
        for s in info.signals:
            signals.add_row(
                str(s.id),
                escape(s.event),
                _when(s.sent_at, relative=False),
                escape(s.sent_by or "-"),
                s.consumed_by or "-",
                escape(_short(s.payload)),
            )
        console.print(signals)
    if info.error is not None and info.error.traceback:
        console.print()
        console.print("[bold]Traceback[/]")
        console.print(escape(info.error.traceback.rstrip()), style="dim")


# -- the commands -----------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@db_option
@click.option(
    "--app",
    envvar="TARRY_APP",
    show_envvar=True,
    metavar="MODULE:ATTR",
    help="The workflows' code, to validate payloads exactly as the worker will "
    "(without it: against the schemas the worker published).",
)
@click.version_option(__version__, prog_name="tarry")
@click.pass_context
def cli(ctx: click.Context, app: str | None) -> None:
    """Durable workflows: run a worker, and trigger, signal, inspect, cancel or retry runs.

    Shell completion: eval "$(_TARRY_COMPLETE=bash_source tarry)" (zsh_source, fish_source).

    Exit codes: 0 ok; 1 the run or the operation failed; 2 bad input (usage, JSON, unknown
    workflow or run, invalid payload, a --db that is not a usable tarry database); 3 tarry
    wait timed out; 130/143 a worker stopped by SIGINT/SIGTERM that left runs mid-step (see
    worker --help).

    Example:

    \b
        tarry --db app.db worker examples.order_fulfilment:order &
        tarry --db app.db trigger order-fulfilment --payload '{"order_id": "o_1"}'
    """
    ctx.obj = _State(app)


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Age(click.ParamType):  # type: ignore[type-arg]
    """An age: ``30d``, ``12h``, ``90m``, ``45s`` or plain seconds."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        factor = _AGE_UNITS.get(text[-1:])
        number = text[:-1] if factor is not None else text
        try:
            seconds = float(number) * (factor or 1)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not an age: use e.g. 30d, 12h, 90m, 45s or seconds", param, ctx)
        return seconds


@cli.command()
@db_option
@click.argument("app", envvar="TARRY_APP", metavar="APP")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="On SIGINT/SIGTERM: seconds steps in progress get to finish; then the worker exits, leaving the "
    "rest mid-step for the next worker to resume.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Seconds without a heartbeat after which a standby worker takes over (SQLite) or the other "
    "workers take this one's runs (PostgreSQL). Default: 2.5 on SQLite, 2 on PostgreSQL.",
)
@click.option(
    "--retention",
    type=_Age(),
    default=None,
    help="Prune ended runs older than AGE (e.g. 30d) while serving, every AGE/10 (1 s to 1 h). Default: keep all.",
)
@click.option(
    "--max-recoveries",
    type=click.IntRange(min=0),
    default=None,
    help="Fail a run as quarantined when recovery finds it left running more than N times at one point "
    "of its journal (its step kills every worker). 0: never. Default: the runtime's (5).",
)
@click.option(
    "--max-payload-bytes",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse a child run's or signal's payload larger than N bytes as JSON (PayloadTooLarge). "
    "0: no limit. Default: the runtime's (2 MiB).",
)
@click.option(
    "--max-output-bytes",
    type=click.IntRange(min=0),
    default=None,
    help="Fail a run whose step or workflow output is larger than N bytes as JSON (PayloadTooLarge). "
    "0: no limit. Default: the runtime's (2 MiB).",
)
@click.option(
    "--otel",
    is_flag=True,
    help="OpenTelemetry spans of every run activation and step attempt, through the global tracer "
    "provider APP configures (pip install 'tarry[otel]').",
)
@click.option(
    "--quiet-app-logs",
    is_flag=True,
    help="Show only warnings and errors of the application's own loggers (tarry's follow --log-level).",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus metrics at /metrics and a health check at /healthz (200 while serving, "
    "503 otherwise) on HOST:PORT. Needs pip install 'tarry[metrics]'.",
)
@click.pass_obj
def worker(
    state: _State,
    app: str,
    grace: float,
    log_format: str,
    log_level: str,
    lease_ttl: float | None,
    retention: float | None,
    max_recoveries: int | None,
    max_payload_bytes: int | None,
    max_output_bytes: int | None,
    otel: bool,
    quiet_app_logs: bool,
    metrics: str | None,
) -> None:
    """Serve APP's workflows on the database until SIGINT/SIGTERM.

    APP is MODULE:ATTR naming a Runtime, a workflow or a list of workflows, or a bare
    MODULE (its Runtime, else all its workflows); env TARRY_APP. One worker serves a
    SQLite file: a second one stands by and takes over when the first dies. Any number
    serve a PostgreSQL database, each driving the runs it claimed; when one dies, the
    others take its runs over within --lease-ttl plus half a second. On SIGINT or
    SIGTERM it drains: no new work, steps in progress get --grace seconds to commit;
    then it exits, never waiting for a blocked step: runs still mid-step are left
    running (not cancelled) and the next worker runs their steps again. A second signal
    exits at once. Logs, on stderr: one line per run state change and per step attempt
    (its start at debug), what became of each run at the drain, and the application's own
    log lines (--quiet-app-logs: only their warnings).

    Exit status: 0 after a clean drain (every run stopped at a durable point); 143
    (SIGTERM) or 130 (SIGINT) when it left runs mid-step (grace over, or a second
    signal); 1 when another worker took the database over (LeaseLost) or it failed.

    Example:

    \b
        tarry --db orders.db worker examples.order_fulfilment:order --log-format json --retention 30d
        tarry --db orders.db worker examples.order_fulfilment:order --metrics 127.0.0.1:9464
    """
    import trio

    from . import logs
    from .worker import Worker, run_until_signalled

    runtime = _worker_runtime(load_app(app), state.db)
    limits = {
        "max_recoveries": max_recoveries,
        "max_payload_bytes": max_payload_bytes,
        "max_output_bytes": max_output_bytes,
    }
    for name, value in limits.items():
        if value is not None:  # not given: the runtime's own; 0: no limit
            setattr(runtime, name, value or None)
    if otel and runtime.tracer is None:
        from .tracing import Tracer

        runtime.tracer = Tracer()
    serving = Worker(runtime, lease_ttl=lease_ttl, grace=grace, retention=retention)
    undo = logs.configure(log_format, log_level.upper(), quiet_app=quiet_app_logs)
    server = None
    try:
        if metrics is not None:
            server = _metrics_server(metrics, serving)
        status = trio.run(run_until_signalled, serving)
    finally:
        if server is not None:
            server.close()
        undo()
    if status:
        click.get_current_context().exit(status)


def _metrics_server(address: str, worker: Worker) -> MetricsServer:
    try:  # prometheus-client is an optional extra: imported only when --metrics asks for it
        from .metrics import serve_metrics
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    return serve_metrics(address, worker)


def _worker_runtime(app: Runtime | list[Workflow[Any]], db: str | Path) -> Runtime:
    if not isinstance(app, Runtime):
        return create_runtime(app, store_from_url(db))
    store = app.store
    if isinstance(store, MemoryStore):
        app.store = store_from_url(db)  # the default store of create_runtime(): serve --db instead
    elif isinstance(store, SharedStore):
        explicit = _db_given(click.get_current_context())
        if explicit and not _same_target(store.url, db):
            raise InvalidArgument(f"APP's runtime uses the database {store.url!r}, but --db says {str(db)!r}")
    else:
        raise InvalidArgument(
            f"APP's runtime uses the store {store.name!r}; a worker serves a database clients share "
            "(a SQLite file or a PostgreSQL URL)"
        )
    return app


def _same_target(a: str | Path, b: str | Path) -> bool:
    if is_url(str(a)) or is_url(str(b)):
        return str(a) == str(b)
    return Path(a).resolve() == Path(b).resolve()


@cli.command()
@db_option
@click.argument("workflow", shell_complete=_complete_workflows)
@_payload_options
@click.option("--run-id", metavar="ID", help="Use this run id (a trigger with an existing id is idempotent).")
@click.option("--create", is_flag=True, help="Create the database if it does not exist (else: refused, exit 2).")
@click.option(
    "--force", is_flag=True, help="Queue the run even though no worker has published WORKFLOW (payload unchecked)."
)
@_as_option
@_wait_options
@_json_flag
@click.pass_obj
def trigger(
    state: _State,
    workflow: str,
    payload: str | None,
    payload_file: IO[bytes] | None,
    run_id: str | None,
    create: bool,
    force: bool,
    by: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW (committed at once; a worker runs it).

    The payload is validated first: with --app, by the workflows' code; otherwise against
    the schemas the worker published (a workflow with a plain validator function is checked
    by the worker when the run starts). A WORKFLOW no worker has published is refused once
    any worker has published (--force queues it anyway); before that, it is queued unchecked.

    Example:

    \b
        tarry trigger publish --payload '{"article": "hello"}' --wait
        tarry trigger publish --run-id article-2 --payload '{"article": "bye"}' --json
        tarry --db new.db trigger publish --create    # a database no worker served yet
    """
    data = _read_payload(payload, payload_file)
    with state.client(create=create) as client:
        if state.app is None and not client.workflows():
            click.echo(
                f"Note: no worker has published its workflows on {client.path} yet, so {workflow!r} is not "
                "checked: a worker that serves it will run it.",
                err=True,
            )
        result = client.trigger(workflow, data, run_id=run_id, force=force, by=by)
        if wait:
            _warn_without_worker(client)
            result = client.wait(result.run_id, timeout)
    _print_result(result, as_json, None if as_json else f"Triggered run [bold]{result.run_id}[/].")
    _finish(result, wait)


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@click.argument("event")
@_payload_options
@click.option(
    "--dedup-key",
    metavar="KEY",
    help="Deliver at most once per run under KEY: a repeat (a retried script, say) is not sent again.",
)
@_as_option
@_wait_options
@_json_flag
@click.pass_obj
def signal(
    state: _State,
    run_id: str,
    event: str,
    payload: str | None,
    payload_file: IO[bytes] | None,
    dedup_key: str | None,
    by: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Send the signal EVENT (with a payload) to RUN.

    It is committed to the run's inbox: a run waiting for EVENT takes it (delivered), one
    that is not waiting for it keeps it for a later wait (buffered; a warning names what the
    run waits for instead). RUN is a run id or a unique prefix of one (6+ characters).
    Prints the run's state after the signal (after it took it, with --wait); --json adds
    "delivery": delivered, buffered or deduplicated.
    The sender (--as, default USER@HOST) is stored with it.

    Example:

    \b
        tarry signal 3f2a9c review-decision --payload '{"approved": true}' --dedup-key t-42 --as ana@example.com
    """
    data = _read_payload(payload, payload_file)
    with state.client() as client:
        run_id = client.resolve_run_id(run_id)
        sent = client.send_signal(run_id, event, data, dedup_key=dedup_key, by=by)
        if sent.delivery == "buffered" and sent.waiting_for:
            click.echo(
                f"Warning: run {run_id} waits for {' or '.join(map(repr, sent.waiting_for))}, not {event!r}: "
                f"the signal is kept in its inbox (not dropped) until a wait for {event!r} takes it.",
                err=True,
            )
        if wait:
            _warn_without_worker(client)
        result = client.wait(run_id, timeout) if wait else client.get_run(run_id).result
    said = {
        "delivered": f"Sent {event!r} to run [bold]{run_id}[/].",
        "buffered": f"Sent {event!r} to run [bold]{run_id}[/]: kept in its inbox until it waits for it.",
        "deduplicated": f"Already sent under {dedup_key!r}: not sent again.",
    }[sent.delivery]
    _print_result(result, as_json, None if as_json else said, {"delivery": sent.delivery})
    _finish(result, wait)


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@click.option("--timeout", type=_Seconds(), metavar="SECONDS", help="Give up after this long (exit 3); default: never.")
@_json_flag
@click.pass_obj
def wait(state: _State, run_id: str, timeout: float | None, as_json: bool) -> None:
    """Wait until RUN has ended (completed, failed or cancelled: a suspension is not an
    end) and print it, with its output or error.

    Exit code 0: it completed; 1: it failed or was cancelled; 3: it had not ended within
    --timeout (it goes on). A worker must serve the database meanwhile.

    Example:

    \b
        tarry wait 3f2a9c --timeout 600 --json | jq .output
    """
    with state.client() as client:
        run_id = client.resolve_run_id(run_id)
        _warn_without_worker(client)
        try:
            result = client.wait(run_id, timeout, until="end")
        except WaitTimeout as exc:
            if as_json:
                click.echo(json.dumps({"error": exc.to_dict()}, default=str, ensure_ascii=False))
            click.echo(f"Error: {type(exc).__name__}: {exc.message}", err=True)
            click.get_current_context().exit(EXIT_TIMEOUT)
    _print_result(result, as_json)
    _finish(result, True)


@cli.command()
@db_option
@click.option("--status", "-s", type=click.Choice(STATUSES), multiple=True, help="Only these statuses (repeatable).")
@click.option("--workflow", "-w", "workflow_id", metavar="ID", help="Only runs of this workflow.")
@click.option("--search", metavar="TEXT", help="Substring of the run id, workflow id or payload.")
@click.option("--tag", "-t", metavar="TAG", help="Only runs whose workflow carried this tag when they started.")
@click.option(
    "--waiting",
    type=click.Choice(["event", "sleep"]),
    help="Only suspended runs waiting for an event (a person, say) or sleeping; the longest waits first.",
)
@click.option("--limit", "-n", type=click.IntRange(min=0), default=50, show_default=True, help="At most this many.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many first (paging).")
@_json_flag
@click.pass_obj
def runs(
    state: _State,
    status: tuple[str, ...],
    workflow_id: str | None,
    search: str | None,
    tag: str | None,
    waiting: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List runs, newest first (with --waiting: the longest waits first).

    Example:

    \b
        tarry runs --status suspended --workflow publish --limit 20
        tarry runs --waiting event            # what waits for a person
        tarry runs --search o_42 --json
        tarry runs --tag billing
    """
    with state.client() as client:
        found = client.list_runs(
            status=list(status) or None,
            workflow_id=workflow_id,
            limit=limit,
            offset=offset,
            search=search,
            waiting=waiting,
            oldest_first=waiting is not None,
            tag=tag,
        )
    if as_json:
        _echo_json([r.to_dict() for r in found])
    elif not found:
        click.echo("No runs.")
    else:
        _console().print(_runs_table(found))


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@_json_flag
@click.pass_obj
def show(state: _State, run_id: str, as_json: bool) -> None:
    """Show everything about RUN: status, payload, output or error, what it waits for
    (with its deadline), its journal as a timeline, its signals and who sent them, and
    its audit trail (who triggered, cancelled and retried it, and when).

    RUN is a run id or a unique prefix of one (6+ characters), here and in signal,
    cancel, retry, wait and delete.

    Example:

    \b
        tarry show 3f2a9c
        tarry show 3f2a9c --json | jq .history
    """
    with state.client() as client:
        info = client.get_run(client.resolve_run_id(run_id))
    if as_json:
        _echo_json(info.to_dict())
    else:
        _print_info(info)


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@click.option("--reason", help="Why (kept with the run).")
@_as_option
@_wait_options
@_json_flag
@click.pass_obj
def cancel(
    state: _State, run_id: str, reason: str | None, by: str | None, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Cancel RUN: a suspended run ends at once, a running one when its worker interrupts it.

    Example:

    \b
        tarry cancel 3f2a9c --reason "customer changed their mind"
    """
    with state.client() as client:
        run_id = client.resolve_run_id(run_id)
        result = client.cancel(run_id, reason=reason, by=by)
        if wait:
            result = client.wait(run_id, timeout)
    _print_result(result, as_json, None if as_json else f"Cancel of run [bold]{run_id}[/] committed.")


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@_as_option
@_json_flag
@click.pass_obj
def delete(state: _State, run_id: str, by: str | None, as_json: bool) -> None:
    """Delete RUN, an ended run, with its journal and signals.

    A running or suspended run is refused (exit 1, nothing deleted): cancel it first.
    The runs it started are not touched. Its audit trail stays, with who deleted it.

    Example:

    \b
        tarry delete 3f2a9c
    """
    with state.client() as client:
        run_id = client.resolve_run_id(run_id)
        client.delete(run_id, by=by)
    if as_json:
        click.echo(json.dumps({"deleted": run_id}))
    else:
        _console().print(f"Deleted run [bold]{run_id}[/].")


@cli.command()
@db_option
@click.option("--older-than", type=_Age(), required=True, help="Only runs that ended more than AGE ago (e.g. 30d).")
@click.option(
    "--status",
    "-s",
    type=click.Choice(["completed", "failed", "cancelled"]),
    multiple=True,
    help="Only these ended statuses (repeatable). Default: all three.",
)
@_json_flag
@click.pass_obj
def prune(state: _State, older_than: float, status: tuple[str, ...], as_json: bool) -> None:
    """Delete ended runs, with their journals and signals, that ended more than AGE ago.

    Running and suspended runs are never deleted. Deletes in batches of 500 runs, one
    transaction each, so a worker serving the database is not held up.

    Example:

    \b
        tarry prune --older-than 30d --status completed
    """
    with state.client() as client:
        pruned = client.prune(older_than=older_than, status=list(status) or None)
    if as_json:
        click.echo(json.dumps({"pruned": pruned}))
    else:
        _console().print(f"Pruned {pruned} run(s).")


@cli.command()
@db_option
@click.argument("run_id", metavar="RUN", shell_complete=_complete_runs)
@click.option(
    "--from-step",
    metavar="STEP",
    help="Fork a new run from RUN's journal up to STEP (STEP and what follows run again); RUN is left as it is.",
)
@_as_option
@_wait_options
@_json_flag
@click.pass_obj
def retry(
    state: _State, run_id: str, from_step: str | None, by: str | None, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Re-drive the failed RUN from its journal (completed steps are not run again).

    With --from-step, any ended RUN is forked instead: a new run replays RUN's journal up
    to STEP and runs STEP and everything after it again.

    Example:

    \b
        tarry retry 3f2a9c --from-step publish --wait
    """
    with state.client() as client:
        run_id = client.resolve_run_id(run_id)
        result = client.retry(run_id, from_step=from_step, by=by)
        if wait:
            _warn_without_worker(client)
            result = client.wait(result.run_id, timeout)
    said = f"Retrying run [bold]{run_id}[/]." if from_step is None else f"Forked run [bold]{result.run_id}[/]."
    _print_result(result, as_json, None if as_json else said)
    _finish(result, wait)


@cli.command()
@db_option
@_json_flag
@click.pass_obj
def workflows(state: _State, as_json: bool) -> None:
    """List the workflows: from --app, else those the worker published in the database.

    Example:

    \b
        tarry workflows --json | jq '.[].id'
    """
    with state.client() as client:
        found = client.workflows()
    if as_json:
        _echo_json([w.to_dict() for w in found])
        return
    if not found:
        click.echo("No workflows known: start a worker on this database, or pass --app.")
        return
    _console().print(_workflows_table(found))


def _workflows_table(found: list[WorkflowInfo]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("WORKFLOW", "PAYLOAD", "FIELDS", "SCHEDULE", "DESCRIPTION"):
        table.add_column(name, overflow="fold")
    for w in found:
        props = (w.schema or {}).get("properties") or {}
        required = set((w.schema or {}).get("required") or ())
        fields = ", ".join(f"{k}{'' if k in required else '?'}" for k in props)
        summary = (w.description or "").strip().splitlines()[0] if w.description else ""
        when = f"{w.schedule['cron']} ({w.schedule['tz']})" if w.schedule else ""
        table.add_row(w.id, w.schema_kind, escape(fields), escape(when), escape(summary))
    return table


@cli.command()
@db_option
@_json_flag
@click.pass_obj
def info(state: _State, as_json: bool) -> None:
    """Show which worker serves the database (and its last heartbeat), runs per status,
    client writes not picked up yet, and the database's size.

    Example:

    \b
        tarry --db tarry.db info
    """
    with state.client() as client:
        found = client.engine_info()
    if as_json:
        _echo_json(found.to_dict())
    else:
        _print_engine(found)


def _print_engine(found: EngineInfo) -> None:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    size = "" if found.size_bytes is None else f"{found.size_bytes / 1024:.0f} KiB, "
    grid.add_row("Database", f"{found.path} ({size}schema {found.schema_version})")
    if found.worker is None:
        grid.add_row("Worker", "none has served this database yet")
    else:
        alive = "[green]serving[/]" if found.worker_alive else "[red]gone[/] (lease expired)"
        grid.add_row("Worker", f"{found.worker} {alive}")
        if found.heartbeat_age is not None:
            grid.add_row("Heartbeat", f"{_span(found.heartbeat_age)} ago")
    grid.add_row("Runs", "  ".join(f"{_status(k)} {v}" for k, v in found.runs.items()))
    grid.add_row("Pending changes", str(found.pending_changes))
    _console().print(grid)


@cli.command()
@db_option
@click.pass_obj
def dashboard(state: _State) -> None:
    """Open the Textual dashboard on the database (stand-in for the dashboard package's own
    command, used when its entry point is not installed).

    Example:

    \b
        tarry --db review.db worker examples.publish_review:review &
        tarry --db review.db dashboard
    """
    # Looked up by name: the engine library does not depend on the dashboard package
    # (an import-linter contract); only this command starts it, when it is installed.
    try:
        module = importlib.import_module("tarry.dashboard")
    except ImportError as exc:
        raise click.ClickException(f"the dashboard is not installed here ({exc})") from None
    app_class = getattr(module, "DashboardApp", None)
    if app_class is None:
        raise click.ClickException("this installation's dashboard package has no DashboardApp")
    app_class(state.db).run()


def main() -> None:
    """The ``tarry`` console script."""
    cli(prog_name="tarry")


if __name__ == "__main__":
    main()
