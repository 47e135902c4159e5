"""Pilot helpers: wait for a described condition instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], description: str, *, timeout: float = 10.0) -> Any:
    """Let the app run until ``predicate()`` is truthy; fail naming ``description``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # a widget not mounted yet, say
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {description}")
        await pilot.pause(0.02)


def loaded(pilot: Pilot[Any], screen_type: type, loads: int = 1) -> Callable[[], bool]:
    """A predicate: the current screen is a ``screen_type`` that finished ``loads`` reloads."""
    return lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen.loads >= loads
