"""The house rules hold: ruff and mypy --strict are clean on src/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def test_ruff_is_clean() -> None:
    res = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_is_clean() -> None:
    res = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from hlplay.cli.main import cli\n"
        "heavy = [m for m in ('nats', 'asyncssh', 'jinja2', 'rich', 'tree_sitter', 'mcp') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"imported at start-up: {res.stdout.strip()}"
