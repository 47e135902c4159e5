"""One import name, ``tarry``: the wheel installs no top-level ``engine`` or ``dashboard``,
and a project with its own ``engine.py`` and ``dashboard`` package still imports tarry.

The folders stay ``engine/`` and ``dashboard/``; pyproject.toml maps them to ``tarry`` and
``tarry.dashboard``. These tests build the real wheel, install it into a fresh venv and run
real interpreters from directories outside the repository."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import trio

import tarry

ROOT = Path(__file__).resolve().parent.parent
# Where this code can import from: the folders of the repository that hold Python.
PYTHON_DIRS = ("engine", "dashboard", "tests", "examples", "bench")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_no_code_imports_engine_or_dashboard_as_a_top_level_module() -> None:
    """From the repo root ``engine`` and ``dashboard`` are importable folders: an import of
    them would pass here and fail for every user. Every import must name ``tarry``."""
    found = []
    for folder in PYTHON_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                    for name in names
                    if name.split(".")[0] in ("engine", "dashboard")
                ]
    assert found == [], "imports of engine/dashboard instead of tarry:\n" + "\n".join(found)


def test_from_the_repo_root_every_module_is_imported_as_tarry() -> None:
    """``python -m pytest`` runs with the repo root first on sys.path, next to the folders
    ``engine/`` and ``dashboard/``: importing every module must load none of them."""
    code = (
        "import pkgutil, sys, tarry\n"
        "mods = [m.name for m in pkgutil.walk_packages(tarry.__path__, 'tarry.')]\n"
        "assert 'tarry.dashboard.app' in mods and 'tarry.store.sqlite.store' in mods, mods\n"
        "stray = sorted(m for m in sys.modules if m.split('.')[0] in ('engine', 'dashboard'))\n"
        "assert not stray, stray\n"
        "print(len(mods))\n"
    )
    done = run([sys.executable, "-c", code], cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50


def test_a_project_with_its_own_engine_and_dashboard_imports_tarry(tmp_path: Path) -> None:
    """The user's report: a project's ``engine.py`` (SQLAlchemy's usual name) and a Django
    app ``dashboard`` shadowed ours. Run from that project, both are the project's, and
    tarry, its dashboard and its CLI still load."""
    project = tmp_path / "project"
    (project / "dashboard").mkdir(parents=True)
    (project / "engine.py").write_text('URL = "sqlite:///app.db"  # the project\'s own SQLAlchemy engine\n')
    (project / "dashboard" / "__init__.py").write_text('APP = "a Django app"\n')
    code = (
        "import engine, dashboard\n"
        "assert engine.URL == 'sqlite:///app.db' and dashboard.APP == 'a Django app'\n"
        "from tarry import Client, RunContext, workflow\n"
        "import tarry.dashboard.app, tarry.cli\n"
        "assert tarry.dashboard.DashboardApp is tarry.dashboard.app.DashboardApp\n"
        "print(RunContext.__module__, tarry.dashboard.__name__)\n"
    )
    done = run([sys.executable, "-c", code], cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tarry", "tarry.dashboard"]
    # The CLI from the project's directory: its plugin commands are tarry.dashboard's.
    done = run([sys.executable, "-m", "tarry.cli", "--help"], cwd=project)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("Commands:", 1)[1].split()
    assert {"dashboard", "dev"} <= set(commands), done.stdout


def copy_sources(destination: Path) -> Path:
    """What the build reads, copied, so that building never writes into the checkout."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    for folder in ("engine", "dashboard"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_wheel_installs_tarry_only(tmp_path: Path) -> None:
    """pip builds the wheel (offline: this venv's setuptools, no build isolation), and a
    fresh venv that installs it imports ``tarry`` and ``tarry.dashboard`` but neither
    ``engine`` nor ``dashboard``, from a directory outside the repository."""
    source = copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), "."],
        cwd=source,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("tarry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names} == {"tarry", f"{wheel.name.split('-py3')[0]}.dist-info"}
    assert {"tarry/py.typed", "tarry/dashboard/py.typed", "tarry/dashboard/tarry.tcss"} <= names
    # Every package of the folders is in the wheel (pyproject lists them by hand).
    for folder, package in (("engine", "tarry"), ("dashboard", "tarry/dashboard")):
        for init in (ROOT / folder).rglob("__init__.py"):
            assert f"{package}/{init.relative_to(ROOT / folder).as_posix()}" in names, init
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt")
    assert b"tarry = tarry.cli:main" in entry_points
    assert b"dashboard = tarry.dashboard.cli:dashboard" in entry_points

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # The dependencies (trio, textual...) from this venv: a path line in a .pth (the
    # system's site-packages, --system-site-packages, has none of them). Its own .pth
    # files, this checkout's editable install among them, are not read from there.
    (site,) = (env_dir / "lib").glob("python3*/site-packages")
    (site / "dependencies.pth").write_text(str(Path(trio.__file__).parent.parent) + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = run(
        [str(python), "-c", "import tarry, tarry.dashboard, tarry.dashboard.app; print(tarry.__file__)"], outside, env
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(site), done.stdout
    for name in ("engine", "dashboard"):
        done = run([str(python), "-c", f"import {name}"], outside, env)
        assert done.returncode == 1
        assert f"No module named '{name}'" in done.stderr, done.stderr
    done = run([str(env_dir / "bin" / "tarry"), "--version"], outside, env)
    assert done.returncode == 0, done.stderr
    assert tarry.__version__ in done.stdout
