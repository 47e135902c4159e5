"""The engine names the dashboard uses beyond its core API, imported in one place.

``Client`` and ``Worker`` are public in ``engine``; the fallback covers a checkout where
``engine/__init__.py`` does not re-export them yet.
"""

from __future__ import annotations

try:
    from engine import Client, Worker  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - until engine re-exports them
    from engine.client import Client
    from engine.worker import Worker

__all__ = ["Client", "Worker"]
