"""Shared test set-up. Real-part fixtures live in tests/fixtures/*."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from realparts import NIX_CONFIG

# Nix must never reach for the network in tests, and the flakes CLI is needed.
os.environ["NIX_CONFIG"] = NIX_CONFIG
os.environ.setdefault("HLPLAY_NO_COLOR", "1")

pytest_plugins = [
    "fixtures.nats",
    "fixtures.sshd",
    "fixtures.nix",
    "fixtures.lab",
]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO
