"""``flake.lock`` files: read one (versions 5 to 7) and diff two.

A lock names every input of a flake, inputs of inputs included, by *input
path* (``nixpkgs``, ``home-manager/nixpkgs``) and pins each to a ``locked``
reference: a revision for git-like inputs, a ``narHash`` for every kind, and
``lastModified`` (seconds since the epoch) for the date. Inputs that
``follows`` another hold no lock of their own and are left out.

:func:`diff_locks` lists the inputs that moved, were added or removed, each
with its before and after pins; :func:`render_changes` prints them one per
line, e.g.::

    • upstream (path:/srv/upstream): narHash sha256-HsGUPqwIAu9I… 2026-11-22 02:59
      → sha256-lxmSMy/G… 2026-11-22 03:05
    • nixpkgs (github:NixOS/nixpkgs/nixos-24.05): 3d2d8f281a27 2024-05-01 12:00
      → a3a3dda3bacf 2024-05-20 08:13

(each on one line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hlplay.errors import HlplayError, Location

SUPPORTED_VERSIONS = (5, 6, 7)
UPDATED, ADDED, REMOVED = "updated", "added", "removed"


class LockError(HlplayError):
    """A lock file that cannot be read."""


@dataclass(frozen=True)
class LockedInput:
    """One input as a lock pins it."""

    path: str  # input path from the root: "nixpkgs", "home-manager/nixpkgs"
    type: str
    original: str  # what the flake asked for, as a flake reference
    locked: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rev(self) -> str | None:
        rev = self.locked.get("rev")
        return str(rev) if rev else None

    @property
    def nar_hash(self) -> str | None:
        h = self.locked.get("narHash")
        return str(h) if h else None

    @property
    def last_modified(self) -> int | None:
        value = self.locked.get("lastModified")
        return int(value) if isinstance(value, int | float) else None

    @property
    def date(self) -> str:
        """``lastModified`` as ``YYYY-MM-DD HH:MM`` (UTC), or ``""``."""
        if self.last_modified is None:
            return ""
        return datetime.fromtimestamp(self.last_modified, UTC).strftime("%Y-%m-%d %H:%M")

    @property
    def pin(self) -> str:
        """A short name for what is locked: the revision, else the NAR hash."""
        if self.rev:
            return self.rev[:12]
        if self.nar_hash:
            return _short_hash(self.nar_hash)
        return "?"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "original": self.original,
            "rev": self.rev,
            "narHash": self.nar_hash,
            "lastModified": self.last_modified,
            "date": self.date or None,
            "locked": dict(self.locked),
        }


@dataclass(frozen=True)
class FlakeLock:
    version: int
    inputs: Mapping[str, LockedInput]  # by input path, root's inputs first
    root_names: tuple[str, ...] = ()  # the flake's own inputs, "follows" ones included


@dataclass(frozen=True)
class InputChange:
    """An input whose pin differs between two locks."""

    path: str
    kind: str  # updated | added | removed
    before: LockedInput | None
    after: LockedInput | None

    @property
    def original(self) -> str:
        side = self.after or self.before
        return side.original if side is not None else ""

    def render(self) -> str:
        head = f"• {self.path} ({self.original})"
        if self.kind == ADDED and self.after is not None:
            return f"{head}: added at {_pin_and_date(self.after)}"
        if self.kind == REMOVED and self.before is not None:
            return f"{head}: removed (was {_pin_and_date(self.before)})"
        assert self.before is not None and self.after is not None
        label = "" if (self.before.rev or self.after.rev) else "narHash "
        return f"{head}: {label}{_pin_and_date(self.before)} → {_pin_and_date(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.path,
            "change": self.kind,
            "original": self.original,
            "from": self.before.to_dict() if self.before is not None else None,
            "to": self.after.to_dict() if self.after is not None else None,
        }


def _short_hash(nar_hash: str) -> str:
    algo, _, digest = nar_hash.partition("-")
    return f"{algo}-{digest[:12]}…" if digest else nar_hash[:16]


def _pin_and_date(node: LockedInput) -> str:
    return f"{node.pin} {node.date}".rstrip()


def original_ref(attrs: Mapping[str, Any]) -> str:
    """A lock's ``original`` attributes as the flake reference a user would write."""
    kind = str(attrs.get("type", ""))
    query = {k: attrs[k] for k in ("ref", "rev", "dir") if k in attrs}
    if kind in ("github", "gitlab", "sourcehut"):
        ref = f"{kind}:{attrs.get('owner', '?')}/{attrs.get('repo', '?')}"
        if "ref" in query or "rev" in query:
            ref += "/" + str(query.pop("rev", None) or query.pop("ref"))
    elif kind == "path":
        ref = f"path:{attrs.get('path', '')}"
    elif kind == "indirect":
        ref = f"flake:{attrs.get('id', '?')}"
        if "ref" in query:
            ref += "/" + str(query.pop("ref"))
    elif kind in ("git", "hg"):
        url = str(attrs.get("url", ""))
        ref = url if url.startswith(f"{kind}+") else f"{kind}+{url}"
    elif kind in ("tarball", "file"):
        ref = str(attrs.get("url", ""))
    else:
        ref = f"{kind}:" + ",".join(f"{k}={v}" for k, v in sorted(attrs.items()) if k != "type")
    if query:
        ref += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return ref


def parse_lock(text: str, filename: str = "flake.lock") -> FlakeLock:
    """Read a lock file's text; a malformed one raises :class:`LockError`."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        where = Location(filename, exc.lineno, exc.colno)
        raise LockError(f"not valid JSON: {exc.msg}", where) from None
    if not isinstance(doc, dict):
        raise LockError("a lock file is a JSON object", Location(filename, 1, 1))
    version = doc.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise LockError(
            f"unsupported lock file version {version!r} (this reads versions 5 to 7)",
            Location(filename),
        )
    nodes = doc.get("nodes")
    root_key = doc.get("root", "root")
    if not isinstance(nodes, dict) or not isinstance(nodes.get(root_key), dict):
        raise LockError(f"no root node {root_key!r} in 'nodes'", Location(filename))
    inputs: dict[str, LockedInput] = {}
    seen: set[str] = {str(root_key)}
    # breadth first, so an input reached by several paths keeps its shortest one
    queue: list[tuple[str, Any]] = [("", nodes[root_key])]
    while queue:
        prefix, node = queue.pop(0)
        refs = node.get("inputs", {}) if isinstance(node, dict) else {}
        if not isinstance(refs, dict):
            continue
        for name, target in refs.items():
            if not isinstance(target, str):
                continue  # a "follows" path: pinned where it points
            child = nodes.get(target)
            if not isinstance(child, dict):
                raise LockError(
                    f"input '{prefix}{name}' points to a missing node {target!r}",
                    Location(filename),
                )
            if target in seen:
                continue
            seen.add(target)
            path = f"{prefix}{name}"
            locked = child.get("locked") or {}
            original = child.get("original") or locked
            if isinstance(locked, dict) and isinstance(original, dict):
                inputs[path] = LockedInput(
                    path=path,
                    type=str(locked.get("type", original.get("type", "?"))),
                    original=original_ref(original),
                    locked=dict(locked),
                )
            queue.append((f"{path}/", child))
    root_refs = nodes[root_key].get("inputs", {})
    names = tuple(root_refs) if isinstance(root_refs, dict) else ()
    return FlakeLock(version=int(version), inputs=inputs, root_names=names)


def load_lock(path: str | Path) -> FlakeLock:
    """Read ``path``; a missing file is a lock with no inputs."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        return FlakeLock(version=7, inputs={})
    return parse_lock(text, str(p))


def diff_locks(old: FlakeLock, new: FlakeLock) -> list[InputChange]:
    """Inputs whose pin differs, in the new lock's order, then the removed ones."""
    changes: list[InputChange] = []
    for path, after in new.inputs.items():
        before = old.inputs.get(path)
        if before is None:
            changes.append(InputChange(path, ADDED, None, after))
        elif dict(before.locked) != dict(after.locked):
            changes.append(InputChange(path, UPDATED, before, after))
    for path, before in old.inputs.items():
        if path not in new.inputs:
            changes.append(InputChange(path, REMOVED, before, None))
    return changes


def render_changes(changes: list[InputChange]) -> str:
    """One line per changed input, or a line saying that none moved."""
    if not changes:
        return "no input moved"
    return "\n".join(change.render() for change in changes)
