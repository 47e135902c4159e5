"""How a worker notices what other processes commit to a SQLite file, and how they nudge it.

Clients write their change and an outbox row in one transaction, then send a datagram to
the worker's wake socket (a unix datagram socket in a private temporary directory, its
path published in the lease). The datagram only says "look now"; the database is the
source of truth. So a lost datagram (a full queue, a client of another user that cannot
reach the socket, a platform without unix sockets) costs latency, not data: the watch also
checks ``PRAGMA data_version`` every ``poll_interval`` (20 ms), which changes whenever
another connection commits. Both are watched by one plain thread (a socket receive with a
timeout, then a ~5 us pragma), so an idle worker's event loop sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading

from ...errors import StoreError, WorkflowError
from ..base import ChangeWatch

__all__ = ["DataVersion", "Nudger", "SQLiteWatch"]

log = logging.getLogger("tarry.worker")


class DataVersion:
    """``PRAGMA data_version`` on a connection of its own: a number that changes whenever
    another connection (of any process, this one's writer included) commits to the file.

    One connection, behind a lock, so that values from any thread compare: the pragma's
    value is per connection. Cheap (no I/O while nothing changed): UIs and the worker poll it.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 5.0) -> None:
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(
                        self._path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
                    )
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise StoreError(f"database {self._path!r}: {type(exc).__name__}: {exc}", path=self._path) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SQLiteWatch(ChangeWatch):
    """A wake socket plus ``data_version``: see the module's docstring.

    Args:
        path: the database file.
        poll_interval: seconds between ``data_version`` checks.
        wake_socket: bind a wake socket (``False``, or no unix sockets: poll alone).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float, poll_interval: float, wake_socket: bool = True
    ) -> None:
        self.poll_interval = poll_interval
        self.address: str | None = None
        self._socket: socket.socket | None = None
        self._dir: str | None = None
        self._version = DataVersion(path, busy_timeout)
        self._closed = threading.Event()
        if wake_socket and hasattr(socket, "AF_UNIX"):
            self._bind()
        # Read now, before the worker first looks at the changes: a commit after this is seen.
        self._seen = self._version()

    def _bind(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="tarry-")  # 0700: only this user can wake us
        path = os.path.join(self._dir, "wake")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            log.warning("no wake socket (%s); noticing changes by polling every %.0f ms", exc, self.poll_interval * 1e3)
            return
        self._socket = sock
        self.address = path

    def wait(self, timeout: float) -> bool:
        nudged = False
        sock = self._socket
        if sock is not None:
            try:
                sock.settimeout(min(timeout, self.poll_interval))
                sock.recv(64)
                nudged = True
                sock.setblocking(False)
                with contextlib.suppress(OSError):  # more queued nudges say the same
                    while True:
                        sock.recv(64)
            except (TimeoutError, OSError):
                pass
        else:
            self._closed.wait(min(timeout, self.poll_interval))
        try:
            version = self._version()
        except WorkflowError as exc:  # the file is busy or gone: say so, keep watching
            log.warning("cannot watch the database for changes: %s", exc.message)
            self._closed.wait(1.0)
            return False
        if nudged or version != self._seen:
            self._seen = version  # read before the worker looks: a commit after this is seen next time
            return True
        return False

    def close(self) -> None:
        self._closed.set()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._version.close()


class Nudger:
    """Sends a worker's wake socket a datagram: best effort, never raises."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, address: str | None) -> None:
        if address is None or not hasattr(socket, "AF_UNIX"):
            return
        with self._lock:
            if self._closed:
                return
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            sock = self._socket
        with contextlib.suppress(OSError):  # no worker there any more, or its queue is full
            sock.sendto(b"!", address)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._socket is not None:
                self._socket.close()
                self._socket = None
