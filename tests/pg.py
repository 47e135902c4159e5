"""A throw-away PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` in a temporary
directory, on 127.0.0.1 and a free port, trusting local connections, stopped and deleted
at the end of the session.

The server's binaries come from the Debian ``postgresql`` package (``.ci/run`` installs
it when missing). PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user the package creates. ``fsync=off``: the tests kill worker processes,
never the server, so the server's own crash safety is not what they test, and it saves
seconds. Where no server can be had, :func:`cluster` says why and the tests skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Cluster", "Unavailable", "cluster"]

SUPERUSER = "tarry"


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says what to install."""


def _binaries() -> Path:
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            return Path(found).resolve().parent
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(bindir, "initdb")):
            return Path(bindir)
    raise Unavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install the Debian 'postgresql' package "
        "(apt-get install postgresql), as .ci/run does"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, bindir: Path, directory: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.directory = directory
        self.port = port
        self.run_as = run_as
        self._databases = 0

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.directory)

    def start(self) -> None:
        data = self.directory / "data"
        done = self._run(
            str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync"
        )
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )
        if done.returncode != 0:
            log = (self.directory / "log").read_text() if (self.directory / "log").exists() else ""
            raise Unavailable(f"pg_ctl start failed: {done.stderr.strip()} {log[-500:]}")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster for the session.

    Raises:
        Unavailable: no binaries, no psycopg, or the server would not start.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install 'tarry[postgres]'") from None
    bindir = _binaries()
    run_as = None
    directory = Path(tempfile.mkdtemp(prefix="tarry-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            raise Unavailable("running as root and no 'postgres' user to run the server as") from None
        os.chown(directory, user.pw_uid, user.pw_gid)
        run_as = "postgres"
    server = Cluster(bindir, directory, _free_port(), run_as)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
