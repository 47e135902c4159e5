"""Who asks: the identity the audit trail records for a trigger, signal, cancel or retry.

A Runtime or Client records ``user@host`` of its process unless told otherwise
(``identity=``; per call ``by=``; ``tarry ... --as NAME`` on the command line).
"""

from __future__ import annotations

import functools
import getpass
import socket

from .limits import check_name

__all__ = ["default_identity", "resolve_identity"]


@functools.cache
def default_identity() -> str:
    """``user@host`` of this process (computed once)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container's uid)
        user = "unknown"
    return f"{user}@{socket.gethostname() or 'localhost'}"


def resolve_identity(by: str | None, default: str) -> str:
    """``by`` when given (checked as a name), else ``default``.

    Raises:
        InvalidArgument: ``by`` is empty, over 1000 bytes, or holds a control character.
    """
    if by is None:
        return default
    check_name("identity", by)
    return by
