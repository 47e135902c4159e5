"""The SQLite store, by concept: :mod:`.schema` (the file's tables and migrations),
:mod:`.statements` (every SQL statement), :mod:`.committer` (how writes commit),
:mod:`.watch` (how a worker notices other processes' commits), :mod:`.store` (the
:class:`SQLiteStore` that puts them together)."""

from .schema import APPLICATION_ID, SCHEMA_VERSION
from .store import SQLiteStore

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStore"]
