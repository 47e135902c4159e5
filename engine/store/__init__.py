"""Stores: where runs, journals and signal inboxes live (see :mod:`tarry.store.base`)."""

from __future__ import annotations

import os
from typing import Any

from .base import SharedStore, Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "SharedStore", "Store", "is_url", "store_from_url"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a database server (``postgresql://...``) rather than a file."""
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


def store_from_url(target: str | os.PathLike[str], **options: Any) -> SharedStore:
    """The store ``target`` names: a ``postgresql://`` URL (:class:`PostgresStore`, which
    needs ``pip install 'tarry[postgres]'``) or a SQLite file's path.

    Raises:
        ImportError: a PostgreSQL URL without psycopg installed (the message says what to install).
    """
    if is_url(target):
        from .postgres import PostgresStore  # psycopg is optional: imported only when asked for

        return PostgresStore(str(target), **options)
    return SQLiteStore(target, **options)
