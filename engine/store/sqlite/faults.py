"""What a ``sqlite3`` error means for tarry: the one place that reads SQLite's result codes.

Everything above the store sees typed errors only (see :mod:`tarry.errors`): a full disk
is :class:`DiskFull`, a damaged file :class:`DatabaseCorrupt`, a file that cannot be written
:class:`DatabaseReadOnly`, a held lock :class:`StoreBusy`; anything else a plain
:class:`StoreError` quoting SQLite.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ...errors import DatabaseCorrupt, DatabaseReadOnly, DiskFull, NotATarryDatabase, StoreBusy, StoreError

__all__ = ["store_error", "writable_problem"]


def store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """The typed error for ``exc``, raised on the database at ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return StoreBusy(path, text)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return DiskFull(path, text)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return DatabaseCorrupt(path, text)
    if name.startswith("SQLITE_NOTADB"):
        return NotATarryDatabase(path, text)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) and (problem := writable_problem(Path(path))):
        return DatabaseReadOnly(path, f"{problem}; SQLite said: {text}")
    return StoreError(f"database {path!r}: {type(exc).__name__}: {text}", path=path)


def writable_problem(path: Path) -> str | None:
    """Why tarry could not write ``path`` (or create its ``-wal``/``-shm`` beside it), or
    ``None``. ``os.access`` also sees a read-only mount, which permission bits (and root)
    would not."""
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        return f"its directory {str(folder)!r} is read-only"
    return None
