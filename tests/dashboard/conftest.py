"""Fixtures of the dashboard tests: a real database served by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tarry import Client

from .engine_thread import WorkerThread
from .workflows import ALL, FIXED


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path | str, Any]]:
    """``(db, client)``: a database a worker serves, and a client to set up runs. A SQLite
    file, or (``@pytest.mark.parametrize("served", ["postgres"], indirect=True)``) a
    database on the session's PostgreSQL server."""
    FIXED["charge"] = False
    kind = getattr(request, "param", "sqlite")
    target: Path | str = str(request.getfixturevalue("postgres_url")) if kind == "postgres" else tmp_path / "dash.db"
    with WorkerThread(target, ALL), Client(target) as client:
        yield target, client
