"""Shared fixtures: the same behaviour tests run against every store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tarry import MemoryStore, SQLiteStore, Store

from . import pg


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tarry.db"


@pytest.fixture
def make_store(store_kind: str, db_path: Path, request: pytest.FixtureRequest) -> Callable[[], Store]:
    """A factory, so a test can open a second store on the same file (a restart).

    Modules opt in to PostgreSQL by overriding ``store_kind`` with a ``"postgres"`` param."""
    memory = MemoryStore()
    url = request.getfixturevalue("postgres_url") if store_kind == "postgres" else None

    def make() -> Store:
        if store_kind == "memory":
            return memory
        if url is not None:
            from tarry.store.postgres import PostgresStore

            return PostgresStore(url)
        return SQLiteStore(db_path)

    return make


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.Cluster]:
    """One throw-away PostgreSQL server for the session (tests/pg.py), or a skip saying
    what to install."""
    try:
        started = pg.cluster()
        server = started.__enter__()
    except pg.Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        started.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_cluster: pg.Cluster) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_cluster.new_database()


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    store = make_store()
    yield store
    await store.close()


@pytest.fixture
def mock_clock(request: pytest.FixtureRequest) -> trio.testing.MockClock:
    """Virtual time that jumps ahead whenever every task has been blocked for 5 ms.

    Not 0 (pytest-trio's ``autojump_clock``): tasks also block while a worker thread runs a
    sync step or a SQLite read or commit, and the clock must not leap over a timeout during
    that real work. Hour-long sleeps still pass in milliseconds.

    On PostgreSQL every read and commit is a round trip in a thread that can take tens of
    milliseconds on a loaded machine (a run's deadline leapt past while its first step
    committed): there the clock waits 50 ms of stillness before it jumps.
    """
    kind = request.getfixturevalue("store_kind") if "store_kind" in request.fixturenames else None
    return trio.testing.MockClock(autojump_threshold=0.05 if kind == "postgres" else 0.005)


async def wait_for(predicate: Callable[[], Any], description: str, *, timeout: float = 30.0) -> Any:
    """Poll an async or sync predicate until it is truthy (virtual or real time).

    The interval grows from 1 ms to a hundredth of the timeout, so a wait over hours of
    virtual time takes a few hundred polls, and a real-time wait still reacts quickly.
    """
    interval = 0.001
    with trio.move_on_after(timeout):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await trio.sleep(interval)
            interval = min(interval * 1.5, timeout / 100)
    raise AssertionError(f"timed out waiting for {description}")
