"""``tarry dashboard --web``: the dashboard served by textual-serve, driven in a real
headless Chromium, against a database a real ``tarry worker`` process serves."""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tarry import Client
from tarry.cli import cli
from tarry.dashboard.cli import WEB_HOST, is_loopback, served_command

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.workflows_cli:runtime"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: The flags that work on this machine, and none that reach beyond it: every host name but
#: the loopback address fails to resolve (the page asks a font server for a stylesheet).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
#: Run before the page's own scripts: textual-serve's page keeps its xterm.js Terminal in
#: ``this.terminal`` of an object of its own; catch it there so the test can read what the
#: terminal shows, row by row, as text.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    window.tarryTerminal = value;
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
  },
});
"""
SCREEN_TEXT = """
const term = window.tarryTerminal;
if (!term) return "";
const rows = [];
for (let i = 0; i < term.rows; i++) {
  const line = term.buffer.active.getLine(i);
  rows.push(line ? line.translateToString(true) : "");
}
return rows.join("\\n");
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((WEB_HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], description: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {description}"
        time.sleep(0.05)
    return value


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium under chromedriver (Debian's ``chromium`` and ``chromium-driver``;
    .ci/run installs them); nothing is downloaded."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"no Chromium here: {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tarry-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # a driver path: no Selenium Manager
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tarry.cli", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.subprocess
@pytest.mark.slow
def test_approve_a_run_in_the_browser(tmp_path: Path, browser: Any) -> None:
    # A name a shell would run code from, were the served command not quoted.
    db = tmp_path / "it's a $(touch INJECTED) db;.db"
    worker = start(["--db", str(db), "worker", APP], tmp_path / "worker.log")
    web: subprocess.Popen[bytes] | None = None
    try:
        with Client(db) as client:
            wait_until(
                lambda: client.engine_info().worker_pid == worker.pid and client.engine_info().worker_alive,
                "the worker to serve",
            )
            run = client.trigger("approval", {"title": "Q3 report"})
            assert client.wait(run.run_id, 15).status == "suspended"

            port = free_port()
            web = start(["dashboard", "--db", str(db), "--web", "--port", str(port)], tmp_path / "web.log")

            def listening() -> bool:
                assert web is not None
                assert web.poll() is None, (tmp_path / "web.log").read_text()
                with socket.socket() as sock:
                    return sock.connect_ex((WEB_HOST, port)) == 0

            wait_until(listening, "the web dashboard to listen")

            from selenium.webdriver.common.by import By

            browser.get(f"http://{WEB_HOST}:{port}/")

            def screen() -> str:
                return str(browser.execute_script(SCREEN_TEXT))

            def row() -> str:
                # The list shows a unique prefix of each id (ten columns, the ellipsis one of them).
                return next((line for line in screen().splitlines() if run.run_id[:8] in line), "")

            assert "suspended" in wait_until(row, "the run in the page")
            keyboard = browser.find_element(By.CSS_SELECTOR, "textarea.xterm-helper-textarea")
            keyboard.send_keys("a")
            wait_until(lambda: f"Approve run {run.run_id}?" in screen(), "the approval's question")
            keyboard.send_keys("y")
            wait_until(lambda: "completed" in row(), "the run completed in the page")

            info = client.get_run(run.run_id)
            assert info.status == "completed"
            assert info.output == {"published": True, "by": None}
            assert [s.payload for s in info.signals] == [{"approved": True}]
    finally:
        if web is not None:
            stop(web)
        stop(worker)
    assert web.returncode == 0, (tmp_path / "web.log").read_text()
    assert not (ROOT / "INJECTED").exists()
    assert not (tmp_path / "INJECTED").exists()


def test_served_command_is_quoted_for_a_shell() -> None:
    db = "/tmp/it's $(rm -rf ~) `x` db;.db"
    command = served_command(db, ['--approve={"approved": true, "by": "a b"}', "--read-only"])
    assert shlex.split(command) == [
        sys.executable,
        "-m",
        "tarry.cli",
        "dashboard",
        f"--db={db}",
        '--approve={"approved": true, "by": "a b"}',
        "--read-only",
    ]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_web_flags_refused_without_web(tmp_path: Path) -> None:
    db = tmp_path / "tarry.db"
    Client(db).close()
    result = CliRunner().invoke(cli, ["--db", str(db), "dashboard", "--port", "9000"])
    assert result.exit_code == 2
    assert "--port goes with --web" in result.output
    result = CliRunner().invoke(cli, ["--db", str(db), "dashboard", "--web", "--public-url", "ftp://x"])
    assert result.exit_code == 2
    assert "'ftp://x' is not an http:// or https:// URL" in result.output


def test_web_refuses_a_missing_database_and_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(db), "--web", "--port", str(free_port())])
    assert result.exit_code == 2  # DatabaseMissing, as for every tarry command
    assert "typo.db" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.subprocess
def test_warns_beyond_loopback_and_says_when_the_port_is_taken(tmp_path: Path) -> None:
    """Bound to every address, it warns first; the port is held by a socket that never
    listens, so it fails to listen with one line, and nothing is ever served beyond this
    machine."""
    db = tmp_path / "tarry.db"
    Client(db).close()
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        port = held.getsockname()[1]
        command = ["dashboard", "--db", str(db), "--web", "--host", "0.0.0.0", "--port", str(port)]
        result = subprocess.run(
            [sys.executable, "-m", "tarry.cli", *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Warning: listening on 0.0.0.0, beyond this machine"), result.stderr
    assert lines[-1].startswith(f"Error: cannot listen on 0.0.0.0:{port}:"), result.stderr
    assert "Traceback" not in result.stderr
