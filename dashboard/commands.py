"""TarryCommands: the command palette offers every action and every filter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .actions import ACTIONS, ON_RUN, WRITES
from .source import FILTERS

__all__ = ["TarryCommands"]


class TarryCommands(Provider):
    """Hits ``(title, callback, help)`` for the actions that apply to the current screen."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        screen = self.screen  # the screen under the palette
        commands: list[tuple[str, Callable[[], Any], str]] = []
        for action in ACTIONS:
            if action.name in WRITES and app.read_only:
                continue
            if action.name in ON_RUN and not hasattr(screen, "selected_run"):
                continue
            commands.append((action.title, partial(app.run_action, action.name), action.help))
        if hasattr(screen, "action_filter"):
            for flt in FILTERS:
                run = partial(screen.run_action, f"filter({flt.name!r})")
                commands.append((f"filter: {flt.title}", run, f"Show {flt.title} runs (key {flt.key})"))
            commands.append(
                ("search: runs", partial(screen.run_action, "search"), "Search run id, workflow, payload (/)")
            )
        return commands

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
