"""Every example runs as written: each command's ``--help`` example and the shell lines of
``examples/*.py`` docstrings, each in a fresh directory, through real ``tarry`` processes.

A line ending in ``&`` (or running ``tarry worker``) starts a worker, and the next line runs
once it serves, as a person would wait for it; a worker line without ``&`` runs in the
foreground, so the one before it is stopped first (as a person presses Ctrl+C before typing
the next). ``tarry dashboard --web`` serves until stopped: it runs in the background until it
answers HTTP, then is stopped with SIGTERM. Every other line must exit 0. The dashboards run
headless and quit after their first screenshot. A fixed port in an example (``--port 8080``,
``--metrics 127.0.0.1:9464``) is replaced by a free one: other test runs share this machine. The help examples of the commands that
act on a run share a world: a worker serving ``examples.publish_review:review`` on
``./tarry.db`` and the run ``3f2a9c...`` waiting for its review (so ``3f2a9c`` is a prefix).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tarry import Client, StoreError
from tarry.cli import cli

ROOT = Path(__file__).resolve().parent.parent
RUN = "3f2a9c4be1d84d2f9b0c6a7e5d1f3b2a"
WORLD = [
    "tarry worker examples.publish_review:review &",
    f'tarry trigger publish --run-id {RUN} --payload \'{{"article": "a1"}}\' --wait',
]
#: Commands whose examples run in the world, in this order (signal answers the review, so
#: retry finds the run ended and cancel needs a world of its own).
IN_THE_WORLD = [
    ["runs", "show", "workflows", "info", "prune", "trigger", "signal", "wait", "retry"],
    ["cancel", "delete"],
]
ON_THEIR_OWN = ["cli", "worker", "dashboard", "dashboard (stand-in)", "dev"]


def help_example(name: str) -> list[str]:
    """The lines of the Example block of ``tarry NAME --help`` (``cli``: of ``tarry --help``)."""
    args = ["--help"] if name == "cli" else ["dashboard", "--help"] if name == "dashboard" else [name, "--help"]
    if name == "dashboard (stand-in)":  # the engine's own, shown when the dashboard package is missing
        command = cli.commands["dashboard"]
        text = command.get_help(click.Context(command, info_name="dashboard", parent=click.Context(cli)))
    else:
        result = CliRunner().invoke(cli, args, prog_name="tarry")
        assert result.exit_code == 0, result.output
        text = result.output
    block = text.split("Example:", 1)[1].split("Options:", 1)[0].split("Commands:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def docstring_lines(path: Path) -> list[str]:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return [line.strip() for line in doc.splitlines() if line.strip().startswith(("tarry ", "python "))]


def _db_of(argv: list[str]) -> str:
    return argv[argv.index("--db") + 1] if "--db" in argv else "tarry.db"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(line: str) -> tuple[str, int | None]:
    """``line`` with its fixed port (``--port N``, ``--metrics HOST:N``) made a free one, and that port."""
    port = _free_port()
    line, n = re.subn(r"(--port[ =]|--metrics[ =][^ :]+:)\d+", rf"\g<1>{port}", line)
    return line, port if n else None


class Shell:
    """Runs example lines in ``cwd`` as a person at a terminal would."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        (cwd / "examples").symlink_to(ROOT / "examples")  # `python examples/x.py`, `examples.x:attr`
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TARRY_", "TEXTUAL"))}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        # A dashboard runs headless and quits after its first screenshot (Textual's own switches).
        self.env["TEXTUAL_DRIVER"] = "textual.drivers.headless_driver:HeadlessDriver"
        self.env["TEXTUAL_SCREENSHOT"] = "1"
        self.env["TEXTUAL_SCREENSHOT_LOCATION"] = str(cwd)
        self.workers: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.foreground: list[tuple[str, subprocess.Popen[bytes]]] = []

    def run(self, line: str) -> None:
        line, port = _free_ports(line)
        argv = shlex.split(line, comments=True)
        if argv[:1] == ["tarry"] and "dashboard" in argv and "--web" in argv:
            assert port is not None, f"{line!r}: give --port so the test can reach it"
            self._serve_once(line, port)
            return
        if line.endswith("&") or (argv[:1] == ["tarry"] and "worker" in argv):
            if not line.endswith("&"):  # Ctrl+C on the worker before in the foreground
                self._stop(self.foreground)
                self.foreground.clear()
            self._start_worker(line.removesuffix("&").strip(), _db_of(argv))
            if not line.endswith("&"):
                self.foreground.append(self.workers[-1])
            return
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{line!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"

    def _start_worker(self, line: str, db: str) -> None:
        log = self.cwd / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=self.cwd, env=self.env, stderr=out)
        self.workers.append((line, proc))
        deadline = time.monotonic() + 30
        while not self._serving(self.cwd / db, proc.pid):
            assert proc.poll() is None, f"{line!r} exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{line!r} did not start serving:\n{log.read_text()}"
            time.sleep(0.05)

    def _serve_once(self, line: str, port: int) -> None:
        """Start a ``--web`` dashboard, fetch its page, stop it with SIGTERM: it exits 0."""
        log = self.cwd / "web.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {line}"], cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, f"{line!r} exited {proc.returncode}:\n{log.read_text()}"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                        assert page.status == 200
                        assert "tarry" in page.read().decode()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{line!r} did not serve:\n{log.read_text()}"
                    time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        assert code == 0, f"{line!r} exited {code} on SIGTERM:\n{log.read_text()}"

    @staticmethod
    def _serving(db: Path, pid: int) -> bool:
        try:
            with Client(db, create=False) as client:
                found = client.engine_info()
        except StoreError:  # not created yet
            return False
        return found.worker_pid == pid and found.worker_alive

    def stop(self) -> None:
        """SIGTERM each worker: it drains and exits 0."""
        self._stop(self.workers)

    @staticmethod
    def _stop(workers: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
        for line, proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, f"{line!r} exited {proc.returncode} on SIGTERM"


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    ran = Shell(tmp_path)
    try:
        yield ran
    finally:
        ran.stop()


def test_every_command_is_covered() -> None:
    names = cli.list_commands(click.Context(cli))
    covered = {n for world in IN_THE_WORLD for n in world} | set(ON_THEIR_OWN)
    assert set(names) | {"cli", "dashboard (stand-in)"} == covered


@pytest.mark.subprocess
@pytest.mark.parametrize("names", IN_THE_WORLD, ids=["+".join(w) for w in IN_THE_WORLD])
def test_help_examples_run_in_a_world(shell: Shell, names: list[str]) -> None:
    for line in WORLD:
        shell.run(line)
    for name in names:
        lines = help_example(name)
        assert lines, f"tarry {name} --help has no example"
        for line in lines:
            shell.run(line)


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ON_THEIR_OWN)
def test_help_examples_run_on_their_own(shell: Shell, name: str) -> None:
    lines = help_example(name)
    assert lines, f"tarry {name} --help has no example"
    for line in lines:
        shell.run(line)
    if name in ("dashboard", "dashboard (stand-in)", "dev"):
        drawn = [line for line in lines if " dashboard" in line or " dev " in line]
        drawn = [line for line in drawn if "--web" not in line and "worker" not in line]
        shots = list(shell.cwd.glob("*.svg"))
        assert len(shots) == len(drawn), "a dashboard did not draw its screen"
        for line in drawn:
            db = _db_of(shlex.split(line))
            assert all(db in shot.read_text() for shot in shots), f"a dashboard's title does not name {db}"


@pytest.mark.subprocess
@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_docstring_examples_run(shell: Shell, path: Path) -> None:
    for line in docstring_lines(path):
        shell.run(line)
