"""Every action of the dashboard in one registry: its key, footer text and palette entry.

The app's bindings, the help screen and the command palette are all built from
:data:`ACTIONS` and :data:`tarry.dashboard.source.FILTERS`, so a key is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

from .source import FILTERS

__all__ = ["ACTIONS", "Action", "app_bindings", "filter_bindings"]


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the operator can do."""

    #: The Textual action (``app.<name>``).
    name: str
    key: str
    #: The footer's short text.
    footer: str
    #: The command palette's title and help line.
    title: str
    help: str
    #: Changes a run (hidden with ``--read-only``).
    writes: bool = False
    #: Acts on the highlighted (or shown) run.
    on_run: bool = False
    #: In the footer (which fits 80 columns); every action is in the ``?`` help.
    show: bool = True


ACTIONS: tuple[Action, ...] = (
    Action("signal", "s", "Signal", "run: signal", "Send an event with a JSON payload", writes=True, on_run=True),
    Action("approve", "a", "Approve", "run: approve", "Send the approval to a run waiting for an event", True, True),
    Action(
        "reject",
        "r",
        "Reject",
        "run: reject",
        "Send the rejection to a run waiting for an event",
        True,
        True,
        show=False,
    ),
    Action("cancel_run", "c", "Cancel", "run: cancel", "Cancel the run (asks first)", writes=True, on_run=True),
    Action(
        "retry",
        "R",
        "Retry",
        "run: retry",
        "Re-drive a failed run from its journal",
        writes=True,
        on_run=True,
        show=False,
    ),
    Action("trigger", "t", "Trigger", "workflow: trigger", "Start a run of a registered workflow", writes=True),
    Action(
        "engine", "e", "Engine", "engine: info", "The worker holding the database, its heartbeat, sizes", show=False
    ),
    Action("help", "question_mark", "Keys", "help: keys", "Every key binding"),
    Action("quit", "q", "Quit", "app: quit", "Leave the dashboard"),
)
ACTIONS_BY_NAME = {a.name: a for a in ACTIONS}
#: Actions that change runs: disabled (and hidden) in read-only mode.
WRITES = frozenset(a.name for a in ACTIONS if a.writes)
#: Actions that need a run to act on (a runs table or a run's detail screen).
ON_RUN = frozenset(a.name for a in ACTIONS if a.on_run)


def app_bindings() -> list[BindingType]:
    return [Binding(a.key, a.name, a.footer, show=a.show, tooltip=a.help) for a in ACTIONS]


def filter_bindings() -> list[Binding]:
    return [Binding(f.key, f"filter({f.name!r})", f"{f.title}", show=False) for f in FILTERS]
