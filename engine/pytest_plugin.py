"""tarry's pytest plugin (entry point ``pytest11``): fixtures to test workflows on virtual time.

- ``tarry_env``: a :class:`tarry.testing.TarryEnv` on a new :class:`MemoryStore`, entered
  for the test (register workflows with ``tarry_env.register(...)``). A test that asks for it
  runs under trio (pytest-trio) on :func:`tarry.testing.virtual_clock`, unless it asks for
  a clock of its own (``tarry_clock``, or pytest-trio's ``autojump_clock``, which the env
  switches to manual).
- ``tarry_sqlite_env``: the same on a SQLite file in ``tmp_path``; ``restart()`` opens the
  file again, as a new process would.
- ``tarry_clock``: the virtual clock itself, to read or pass explicitly.

Every name starts with ``tarry_``, so it does not clash with a project's own fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from . import testing

_ENV_FIXTURES = ("tarry_env", "tarry_sqlite_env")


def _run_on_virtual_time(fn: Any, *, clock: Any = None, **options: Any) -> Any:
    """pytest-trio's ``run``: trio.run on a virtual clock unless the test brought one."""
    return trio.run(fn, clock=clock if clock is not None else testing.virtual_clock(), **options)


@pytest.hookimpl(trylast=True)  # after pytest-trio's trio_mode marked every async test trio(run=trio.run)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        uses_env = any(name in getattr(item, "fixturenames", ()) for name in _ENV_FIXTURES)
        # First in line, so pytest-trio picks this ``run``; a test's own trio(run=qtrio.run) still wins.
        if uses_env and all(mark.kwargs.get("run", trio.run) is trio.run for mark in item.iter_markers("trio")):
            item.add_marker(pytest.mark.trio(run=_run_on_virtual_time), append=False)


@pytest.fixture
def tarry_clock() -> trio.testing.MockClock:
    """Virtual time that a TarryEnv moves (pytest-trio runs the test on it)."""
    return testing.virtual_clock()


@pytest.fixture
async def tarry_env() -> AsyncIterator[testing.TarryEnv]:
    """A TarryEnv on a MemoryStore, entered for the test."""
    async with testing.TarryEnv() as env:
        yield env


@pytest.fixture
async def tarry_sqlite_env(tmp_path: Path) -> AsyncIterator[testing.TarryEnv]:
    """A TarryEnv on ``tmp_path / "tarry.db"``: durable across ``restart()``."""
    async with testing.TarryEnv(store=tmp_path / "tarry.db") as env:
        yield env
