"""Stores: where runs, journals and signal inboxes live (see :mod:`engine.store.base`)."""

from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store"]
