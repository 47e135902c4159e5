"""Fixtures of the dashboard tests: a real database served by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Client

from .engine_thread import WorkerThread
from .workflows import ALL, FIXED


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """``(db_path, client)``: a database a worker serves, and a client to set up runs."""
    FIXED["charge"] = False
    path = tmp_path / "dash.db"
    with WorkerThread(path, ALL), Client(path) as client:
        yield path, client
