"""W5 ``client``: runs triggered through ``engine.Client`` from another process while a
worker runs them (the 3-step workflow of W1).

TODO: needs ``engine.Client`` (``engine/client.py``) and the worker (``tarry worker``),
which are being built; until they exist this case reports itself unavailable (exit 3).
"""

from __future__ import annotations

import argparse
from typing import Any

import engine

from .common import Unavailable

DEFAULT_N = 1000
MODES = ()


def require_client() -> None:
    """Raise :class:`Unavailable` unless ``engine.Client`` exists."""
    if not hasattr(engine, "Client"):
        raise Unavailable("engine.Client does not exist yet (engine/client.py is being built); TODO once it lands")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    require_client()
    raise Unavailable("TODO: the client workload is written once engine.Client and the worker have landed")
