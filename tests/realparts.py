"""Finding the real parts tests run against: nats-server, sshd and Nix.

A test that needs one and cannot find it is skipped on a developer machine
but fails under ``CI=true``: CI must run everything.
"""

from __future__ import annotations

import os
import shutil

import pytest

from hlplay.lab.fleet import NIX_CONF
from hlplay.lab.sshd import sshd_binary
from hlplay.natsserver import find_nats_server

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# the lab's offline settings: flakes on, no substituters, no shared eval cache
NIX_CONFIG = NIX_CONF


def require(found: object, what: str) -> None:
    """Skip (locally) or fail (in CI) when a real part is missing."""
    if found:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but was not found", pytrace=False)
    pytest.skip(f"{what} not available")


def nats_server_bin() -> str | None:
    return find_nats_server()


def sshd_bin() -> str | None:
    return sshd_binary()


def nix_available() -> bool:
    return all(shutil.which(t) for t in ("nix", "nix-build", "nix-env", "nix-store"))
