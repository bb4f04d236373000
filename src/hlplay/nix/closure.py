"""Closures: every store path a root needs, with each path's NAR size.

Where a closure comes from, fastest first:

* the local Nix database, read-only (``/nix/var/nix/db/db.sqlite``, tables
  ``ValidPaths`` and ``Refs``): one recursive query, no process to start;
* ``nix path-info --recursive --json`` — the only way for a remote store
  (``--store ssh-ng://host``) and the form the Nix executor sends back from a
  listener or over SSH (see :func:`closure_from_path_info_json`); both output
  shapes are read: Nix 2.8's list of objects and newer Nix's object keyed by path;
* ``nix-store -qR`` with ``nix-store -q --size``, when ``nix path-info`` fails.

Besides the sizes, a :class:`Closure` keeps what a diff needs to tell which
packages are *selected*: the direct references of the root and, for a NixOS
system, of its ``sw`` (the ``environment.systemPackages`` profile).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hlplay.errors import HlplayError
from hlplay.nix.storepath import STORE_DIR, StorePathError, base_path

#: Where the local store keeps its database, unless NIX_STATE_DIR says otherwise.
DEFAULT_STATE_DIR = "/nix/var/nix"
#: What a NixOS toplevel's ``sw`` link points to; used when the link cannot be read.
SW_NAME = "system-path"
#: Keep command lines well below ARG_MAX when passing many paths.
_ARGV_CHUNK = 2000
_NIX_FLAGS = ["--extra-experimental-features", "nix-command"]
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

METHODS = ("auto", "sqlite", "path-info", "nix-store")


class ClosureError(HlplayError):
    """A closure cannot be queried or read."""


@dataclass(frozen=True)
class Closure:
    """A root's closure: each path's NAR size and the references that make the selection."""

    root: str
    sizes: Mapping[str, int]
    root_references: frozenset[str]
    sw: str | None = None
    sw_references: frozenset[str] | None = None
    source: str = field(default="", compare=False)

    @cached_property
    def paths(self) -> frozenset[str]:
        return frozenset(self.sizes)

    @cached_property
    def disk_usage(self) -> int:
        """Sum of NAR sizes, as ``nix path-info --closure-size`` reports it."""
        return sum(self.sizes.values())

    @property
    def selected(self) -> frozenset[str]:
        """Direct references of ``sw`` when there is one, else of the root."""
        return self.sw_references if self.sw_references is not None else self.root_references

    def __len__(self) -> int:
        return len(self.sizes)

    def __contains__(self, path: object) -> bool:
        return path in self.sizes


# --- resolving what the user names ------------------------------------------------------


def resolve_store_path(path: str, store_dir: str = STORE_DIR) -> str:
    """Follow symlinks (a profile, ``system-42-link``, ``./result``) to a top-level store path."""
    if path.startswith(store_dir.rstrip("/") + "/") and not os.path.lexists(path):
        # A store path that is not here may still be valid in another store.
        return base_path(path, store_dir)
    if not os.path.lexists(path):
        raise ClosureError(f"no such file or store path: {path}")
    real = os.path.realpath(path)
    try:
        return base_path(real, store_dir)
    except StorePathError:
        raise ClosureError(f"{path} is not in the Nix store (it resolves to {real})") from None


def local_sw(root: str, store_dir: str = STORE_DIR) -> str | None:
    """The store path ``<root>/sw`` points to, when it is a directory here."""
    sw = os.path.join(root, "sw")
    if not os.path.isdir(sw):
        return None
    try:
        return base_path(os.path.realpath(sw), store_dir)
    except StorePathError:
        return None


def guess_sw(root_references: Iterable[str]) -> str | None:
    """For a closure read elsewhere: the root's single ``system-path`` reference, if any."""
    found = [p for p in root_references if p.rpartition("/")[2].partition("-")[2] == SW_NAME]
    return found[0] if len(found) == 1 else None


# --- nix path-info --json ---------------------------------------------------------------


def path_info_argv(path: str, store: str | None = None) -> list[str]:
    """The command whose output :func:`closure_from_path_info_json` reads."""
    argv = ["nix", *_NIX_FLAGS, "path-info", "--recursive", "--json"]
    if store:
        argv += ["--store", store]
    return [*argv, path]


def _full(ref: str, store_dir: str) -> str:
    return ref if ref.startswith("/") else f"{store_dir.rstrip('/')}/{ref}"


def parse_path_info_json(
    text: str | bytes, store_dir: str = STORE_DIR
) -> dict[str, tuple[int, list[str]]]:
    """``nix path-info --json`` output -> {path: (nar size, references)}, either shape."""
    import json  # here, not at the top: only this source needs it

    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise ClosureError(f"cannot read nix path-info output: {exc}") from None
    entries: Iterable[tuple[Any, Any]]
    if isinstance(data, list):
        entries = ((e.get("path") if isinstance(e, dict) else None, e) for e in data)
    elif isinstance(data, dict):
        entries = data.items()
    else:
        raise ClosureError("cannot read nix path-info output: neither a list nor an object")
    out: dict[str, tuple[int, list[str]]] = {}
    for path, info in entries:
        if not isinstance(path, str) or not path:
            raise ClosureError("cannot read nix path-info output: an entry has no path")
        if info is None or not isinstance(info, dict) or info.get("valid") is False:
            raise ClosureError(f"path '{path}' is not valid")
        size = info.get("narSize")
        refs = info.get("references") or []
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise ClosureError(f"cannot read nix path-info output: bad references of {path}")
        out[_full(path, store_dir)] = (
            size if isinstance(size, int) else 0,
            [_full(r, store_dir) for r in refs],
        )
    return out


def closure_from_path_info_json(
    text: str | bytes,
    root: str | None = None,
    sw: str | None = None,
    *,
    store_dir: str = STORE_DIR,
) -> Closure:
    """Build a :class:`Closure` from ``nix path-info --recursive --json`` output.

    ``root`` defaults to the one path nothing else in the output refers to.
    ``sw`` is the store path ``<root>/sw`` points to, when the caller could
    read it; otherwise the root's ``system-path`` reference stands in for it.
    """
    info = parse_path_info_json(text, store_dir)
    if not info:
        raise ClosureError("nix path-info output lists no paths")
    if root is None:
        referenced = {r for p, (_, refs) in info.items() for r in refs if r != p}
        tops = [p for p in info if p not in referenced]
        if len(tops) != 1:
            raise ClosureError(
                f"nix path-info output has {len(tops)} roots; say which one is the root"
            )
        root = tops[0]
    root = _full(root, store_dir)
    if root not in info:
        raise ClosureError(f"nix path-info output does not include the root {root}")
    root_refs = frozenset(info[root][1])
    if sw is None:
        sw = guess_sw(root_refs)
    sw_refs = frozenset(info[sw][1]) if sw is not None and sw in info else None
    return Closure(
        root=root,
        sizes={p: size for p, (size, _) in info.items()},
        root_references=root_refs,
        sw=sw if sw_refs is not None else None,
        sw_references=sw_refs,
        source="path-info",
    )


# --- the local database -----------------------------------------------------------------

_CLOSURE_SQL = """
WITH RECURSIVE closure(id) AS (
    SELECT ?
    UNION
    SELECT r.reference FROM Refs r JOIN closure c ON r.referrer = c.id
)
SELECT v.path, coalesce(v.narSize, 0) FROM ValidPaths v JOIN closure c ON v.id = c.id
"""
_REFS_SQL = """
SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?
"""


def local_db_path(store: str | None = None) -> str | None:
    """The database the local store uses, or None when Nix would use something else.

    Only the default local store qualifies: no ``store`` given, no
    ``NIX_REMOTE`` other than ``local``, no other store directory, no
    ``store =`` setting in ``NIX_CONFIG``.
    """
    if store not in (None, "", "local", "auto"):
        return None
    if os.environ.get("NIX_REMOTE", "") not in ("", "local", "auto"):
        return None
    if os.environ.get("NIX_STORE_DIR", STORE_DIR).rstrip("/") != STORE_DIR:
        return None
    for line in os.environ.get("NIX_CONFIG", "").splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() == "store" and value.strip() not in ("", "local", "auto"):
            return None
    state = os.environ.get("NIX_STATE_DIR", DEFAULT_STATE_DIR)
    db = os.path.join(state, "db", "db.sqlite")
    return db if os.access(db, os.R_OK) else None


def _uri_path(path: str) -> str:
    """Escape what a file: URI cannot hold literally (urllib would cost start-up time)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def closure_from_db(root: str, db: str, sw: str | None = None) -> Closure:
    """Read ``root``'s closure from the Nix database ``db`` (opened read-only).

    Raises :class:`sqlite3.Error` when the database cannot be read (callers
    fall back to the CLI) and :class:`ClosureError` when ``root`` is not valid.
    """
    con = sqlite3.connect(f"file:{_uri_path(db)}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT id FROM ValidPaths WHERE path = ?", (root,)).fetchone()
        if row is None:
            raise ClosureError(f"path '{root}' is not valid")
        sizes: dict[str, int] = dict(con.execute(_CLOSURE_SQL, (row[0],)))
        root_refs = frozenset(p for (p,) in con.execute(_REFS_SQL, (row[0],)))
        sw_refs: frozenset[str] | None = None
        if sw is not None and sw in sizes:
            sw_row = con.execute("SELECT id FROM ValidPaths WHERE path = ?", (sw,)).fetchone()
            if sw_row is not None:
                sw_refs = frozenset(p for (p,) in con.execute(_REFS_SQL, (sw_row[0],)))
    finally:
        con.close()
    return Closure(
        root=root,
        sizes=sizes,
        root_references=root_refs,
        sw=sw if sw_refs is not None else None,
        sw_references=sw_refs,
        source="sqlite",
    )


# --- the CLI ----------------------------------------------------------------------------


def _run(argv: Sequence[str]) -> str:
    import subprocess  # here, not at the top: the database path needs no process

    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ClosureError(f"{argv[0]}: command not found (is Nix installed?)") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        detail = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        what = " ".join(a for a in argv[:4] if not a.startswith("-") and a != "nix-command")
        raise ClosureError(f"{what} failed: {_strip_ansi(detail)}")
    return proc.stdout


def _strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def closure_from_path_info(root: str, store: str | None = None, sw: str | None = None) -> Closure:
    """Query the closure with ``nix path-info --recursive --json``."""
    return closure_from_path_info_json(_run(path_info_argv(root, store)), root=root, sw=sw)


def closure_from_nix_store(root: str, store: str | None = None, sw: str | None = None) -> Closure:
    """Query the closure with ``nix-store -qR`` and ``nix-store -q --size``."""
    base = ["nix-store"] + (["--store", store] if store else [])
    paths = _run([*base, "-q", "--requisites", root]).split()
    sizes: dict[str, int] = {}
    for i in range(0, len(paths), _ARGV_CHUNK):
        chunk = paths[i : i + _ARGV_CHUNK]
        values = _run([*base, "-q", "--size", *chunk]).split()
        if len(values) != len(chunk):
            raise ClosureError("nix-store -q --size printed an unexpected number of sizes")
        sizes.update(zip(chunk, (int(v) for v in values), strict=True))
    root_refs = frozenset(_run([*base, "-q", "--references", root]).split())
    if sw is None and store:
        sw = guess_sw(root_refs)
    sw_refs: frozenset[str] | None = None
    if sw is not None and sw in sizes:
        sw_refs = frozenset(_run([*base, "-q", "--references", sw]).split())
    return Closure(
        root=root,
        sizes=sizes,
        root_references=root_refs,
        sw=sw if sw_refs is not None else None,
        sw_references=sw_refs,
        source="nix-store",
    )


# --- the entry points -------------------------------------------------------------------


def closure(path: str, store: str | None = None, *, method: str = "auto") -> Closure:
    """The closure of ``path`` (a store path, profile or link to one) with NAR sizes.

    ``store`` is a Nix store URL (``ssh-ng://root@host``, ``daemon``, a
    directory …) for ``--store``; without it the local store is read, from
    its database when that is readable. ``method`` forces one source:
    ``sqlite``, ``path-info`` or ``nix-store``.
    """
    if method not in METHODS:
        raise ClosureError(f"unknown closure method '{method}' (one of {', '.join(METHODS)})")
    local = not store
    root = resolve_store_path(path) if local else base_path(path)
    sw = local_sw(root) if local else None
    if method in ("auto", "sqlite"):
        db = local_db_path(store)
        if db is not None:
            try:
                return closure_from_db(root, db, sw)
            except sqlite3.Error as exc:
                if method == "sqlite":
                    raise ClosureError(f"cannot read the Nix database {db}: {exc}") from None
        elif method == "sqlite":
            raise ClosureError("the local Nix database is not readable here")
    if method == "nix-store":
        return closure_from_nix_store(root, store, sw)
    try:
        return closure_from_path_info(root, store, sw)
    except ClosureError:
        if method == "path-info":
            raise
        # Older Nix or a store the new CLI cannot talk to: the legacy commands still can.
        return closure_from_nix_store(root, store, sw)


async def closure_async(path: str, store: str | None = None, *, method: str = "auto") -> Closure:
    """:func:`closure` without blocking the event loop."""
    import asyncio  # not at the top: the CLI's start-up time counts

    return await asyncio.to_thread(closure, path, store, method=method)
