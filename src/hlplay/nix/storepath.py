"""Nix store paths: ``/nix/store/<hash>-<name>`` split into package name and version.

The split follows nvd: the version begins at the first ``-`` that is followed
by a digit (``python3.11-requests-2.31.0`` is ``python3.11-requests`` at
``2.31.0``); a name without such a dash has an empty version (``etc``,
``system-units``). As in nvd, an output suffix stays part of the version
(``openssl-3.0.13-bin`` is ``openssl`` at ``3.0.13-bin``), so a package's
outputs show up side by side in a diff; :attr:`StorePath.output` and
:attr:`StorePath.base_version` tell the output apart where that matters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from hlplay.errors import HlplayError

#: The store directory every path in this module is relative to.
STORE_DIR = "/nix/store"

#: Nix's base-32 alphabet (no e, o, u, t): a store hash is 32 of these.
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
HASH_LEN = 32

#: Output names recognised at the end of a version (``-bin``, ``-dev`` …).
KNOWN_OUTPUTS = frozenset(
    {
        "bin",
        "dev",
        "lib",
        "man",
        "doc",
        "devdoc",
        "devman",
        "info",
        "debug",
        "static",
        "out",
        "lib32",
        "lib64",
    }
)

_NAME_RE = re.compile(r"[A-Za-z0-9+\-._?=]+")
# The version starts after the first "-" that comes before a digit.
_VERSION_START = re.compile(r"-(?=[0-9])")
_HASH_RE = re.compile(rf"[{NIX_BASE32}]{{{HASH_LEN}}}")


class StorePathError(HlplayError):
    """A string is not a Nix store path."""


@dataclass(frozen=True, slots=True)
class StorePath:
    """One store path, parsed. ``path`` is always the top-level store path."""

    path: str
    hash: str
    name: str
    pname: str
    version: str
    output: str
    is_drv: bool = False

    @property
    def base_version(self) -> str:
        """The version without an output suffix (``3.0.13-bin`` -> ``3.0.13``)."""
        if self.output != "out" and self.version.endswith("-" + self.output):
            return self.version[: -len(self.output) - 1]
        return self.version

    def __str__(self) -> str:
        return self.path


def _split(name: str) -> tuple[str, str]:
    if name.endswith(".drv"):
        name = name[:-4]
    # Searching from 1: the package name is never empty.
    match = _VERSION_START.search(name, 1)
    if match is None:
        return name, ""
    return name[: match.start()], name[match.end() :]


def split_name(name: str) -> tuple[str, str, str, bool]:
    """``name`` (the part after ``<hash>-``) -> (pname, version, output, is_drv)."""
    pname, version = _split(name)
    output = "out"
    if version:
        _, dash, last = version.rpartition("-")
        if dash and last in KNOWN_OUTPUTS:
            output = last
    return pname, version, output, name.endswith(".drv")


def base_path(path: str, store_dir: str = STORE_DIR) -> str:
    """The top-level store path of ``path`` (drops ``/bin/x`` and the like)."""
    prefix = store_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise StorePathError(f"not in the Nix store ({store_dir}): {path}")
    head = path[len(prefix) :].split("/", 1)[0]
    return prefix + head


def parse_store_path(path: str, store_dir: str = STORE_DIR) -> StorePath:
    """Parse ``path`` (a store path or a file inside one); raise StorePathError."""
    top = base_path(os.path.normpath(path), store_dir)
    base = top[len(store_dir.rstrip("/")) + 1 :]
    digest, dash, name = base.partition("-")
    if not dash or not _HASH_RE.fullmatch(digest):
        raise StorePathError(f"not a store path (bad hash part): {path}")
    if not name or name.startswith(".") or not _NAME_RE.fullmatch(name):
        raise StorePathError(f"not a store path (bad name part): {path}")
    pname, version, output, is_drv = split_name(name)
    return StorePath(
        path=top,
        hash=digest,
        name=name,
        pname=pname,
        version=version,
        output=output,
        is_drv=is_drv,
    )


def try_parse_store_path(path: str, store_dir: str = STORE_DIR) -> StorePath | None:
    """Like :func:`parse_store_path`, but None for something that is not one."""
    try:
        return parse_store_path(path, store_dir)
    except StorePathError:
        return None


def pname_version(path: str) -> tuple[str, str]:
    """Fast path for bulk work: (pname, version) of a store path, no validation."""
    name = path[path.rfind("/") + 1 :]
    return _split(name[name.find("-") + 1 :])
