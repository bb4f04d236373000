"""Closure diff in the manner of nvd: what changes between two Nix store closures.

Store paths are grouped by package name (see :mod:`hlplay.nix.storepath`).
A package in both closures whose versions differ is an upgrade ``U`` (every
new version above every old one, in Nix's ordering), a downgrade ``D`` (every
new one below), or changed ``C``. Packages only in the new closure are added
``A``, only in the old one removed ``R``. A package is *selected* when the
root's ``sw`` (both sides must have one) or else the root itself refers to it
directly; the marker after the letter says ``*`` selected in both, ``.`` in
neither, ``+`` newly selected, ``-`` no longer selected. A package whose
versions stayed the same but whose selection changed is listed under
"Selection state changes".

``ClosureDiff.to_json()`` is documented in docs/nix-diff.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hlplay.errors import HlplayError
from hlplay.nix.closure import Closure, closure
from hlplay.nix.render import render_bytes
from hlplay.nix.render import render_text as _render_text
from hlplay.nix.storepath import pname_version
from hlplay.nix.version import compare_versions, sort_versions

SCHEMA = "hlplay.closure-diff/1"

UPGRADED, DOWNGRADED, CHANGED, ADDED, REMOVED = "U", "D", "C", "A", "R"
SELECTED, UNSELECTED, NEWLY_SELECTED, NEWLY_UNSELECTED = "*", ".", "+", "-"


def selection_marker(before: bool, after: bool) -> str:
    """The nvd marker for a package selected ``before`` and/or ``after``."""
    if before and after:
        return SELECTED
    if after:
        return NEWLY_SELECTED
    if before:
        return NEWLY_UNSELECTED
    return UNSELECTED


@dataclass(frozen=True)
class PackageRow:
    """One package in a diff; ``before``/``after`` hold one version per store path."""

    pname: str
    state: str
    selection: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    size_before: int = 0
    size_after: int = 0

    @property
    def selected(self) -> bool:
        """Selected on either side (nvd shows such rows bold)."""
        return self.selection != UNSELECTED

    @property
    def versions(self) -> tuple[str, ...]:
        """The versions that exist (after for added, before for the rest)."""
        return self.after if self.state == ADDED else self.before


@dataclass(frozen=True)
class ClosureDiff:
    """The difference between two closures, ready to print as text or JSON."""

    before_root: str
    after_root: str
    changes: tuple[PackageRow, ...]
    selection: tuple[PackageRow, ...]
    added: tuple[PackageRow, ...]
    removed: tuple[PackageRow, ...]
    before_paths: int
    after_paths: int
    paths_added: int
    paths_removed: int
    before_disk_usage: int
    after_disk_usage: int
    before_label: str = ""
    after_label: str = ""

    # --- questions callers ask ----------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """True when both closures hold exactly the same store paths.

        A rebuilt path without a version change (a new ``etc``) is a change:
        this is what decides whether a host needs deploying.
        """
        return self.paths_added == 0 and self.paths_removed == 0 and not self.has_package_changes

    @property
    def has_package_changes(self) -> bool:
        """True when some package version or selection state changed (nvd's view)."""
        return bool(self.changes or self.selection or self.added or self.removed)

    @property
    def delta(self) -> int:
        return self.after_paths - self.before_paths

    @property
    def disk_usage_delta(self) -> int:
        return self.after_disk_usage - self.before_disk_usage

    def count(self, state: str) -> int:
        """How many version changes have ``state`` (U, D or C)."""
        return sum(1 for row in self.changes if row.state == state)

    # --- output -------------------------------------------------------------------------

    def render_text(self, color: bool = False, *, header: bool = True) -> str:
        """nvd's text: sections of numbered rows and the closing ``Closure size:`` line."""
        return _render_text(self, color=color, header=header)

    def summary(self) -> str:
        """One line for recaps: ``3 upgraded, 1 added, 0 removed, +3.1MiB``."""
        if self.is_empty:
            return "no changes"
        parts = [f"{self.count(UPGRADED)} upgraded"]
        if self.count(DOWNGRADED):
            parts.append(f"{self.count(DOWNGRADED)} downgraded")
        if self.count(CHANGED):
            parts.append(f"{self.count(CHANGED)} changed")
        parts += [f"{len(self.added)} added", f"{len(self.removed)} removed"]
        if self.selection:
            parts.append(f"{len(self.selection)} selection changes")
        if not self.has_package_changes:
            parts.append(f"{self.paths_added} paths rebuilt")
        parts.append(render_bytes(self.disk_usage_delta))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The diff as plain data (schema ``hlplay.closure-diff/1``, docs/nix-diff.md)."""

        def side(root: str, label: str, paths: int, usage: int) -> dict[str, Any]:
            return {"root": root, "label": label, "paths": paths, "disk_usage_bytes": usage}

        return {
            "schema": SCHEMA,
            "before": side(
                self.before_root, self.before_label, self.before_paths, self.before_disk_usage
            ),
            "after": side(
                self.after_root, self.after_label, self.after_paths, self.after_disk_usage
            ),
            "changes": [
                {
                    "pname": r.pname,
                    "state": r.state,
                    "selection": r.selection,
                    "before": list(r.before),
                    "after": list(r.after),
                    "size_delta_bytes": r.size_after - r.size_before,
                }
                for r in self.changes
            ],
            "added": [_single_json(r, r.after, r.size_after) for r in self.added],
            "removed": [_single_json(r, r.before, r.size_before) for r in self.removed],
            "selection": [
                {"pname": r.pname, "selection": r.selection, "versions": list(r.before)}
                for r in self.selection
            ],
            "closure": {
                "before": self.before_paths,
                "after": self.after_paths,
                "added": self.paths_added,
                "removed": self.paths_removed,
                "delta": self.delta,
                "disk_usage_delta_bytes": self.disk_usage_delta,
            },
            "empty": self.is_empty,
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClosureDiff:
        """Rebuild a diff from :meth:`to_json` output (e.g. sent back by a listener)."""
        try:
            if data.get("schema") != SCHEMA:
                raise ValueError(f"unknown schema {data.get('schema')!r}")
            before, after, totals = data["before"], data["after"], data["closure"]
            changes = tuple(
                PackageRow(
                    pname=str(c["pname"]),
                    state=str(c["state"]),
                    selection=str(c["selection"]),
                    before=tuple(map(str, c["before"])),
                    after=tuple(map(str, c["after"])),
                    size_after=int(c.get("size_delta_bytes", 0)),
                )
                for c in data["changes"]
            )
            added = tuple(
                PackageRow(
                    pname=str(a["pname"]),
                    state=ADDED,
                    selection=str(a["selection"]),
                    after=tuple(map(str, a["versions"])),
                    size_after=int(a.get("size_bytes", 0)),
                )
                for a in data["added"]
            )
            removed = tuple(
                PackageRow(
                    pname=str(r["pname"]),
                    state=REMOVED,
                    selection=str(r["selection"]),
                    before=tuple(map(str, r["versions"])),
                    size_before=int(r.get("size_bytes", 0)),
                )
                for r in data["removed"]
            )
            selection = tuple(
                PackageRow(
                    pname=str(s["pname"]),
                    state=CHANGED,
                    selection=str(s["selection"]),
                    before=tuple(map(str, s["versions"])),
                    after=tuple(map(str, s["versions"])),
                )
                for s in data["selection"]
            )
            return cls(
                before_root=str(before["root"]),
                after_root=str(after["root"]),
                before_label=str(before.get("label", "")),
                after_label=str(after.get("label", "")),
                changes=changes,
                selection=selection,
                added=added,
                removed=removed,
                before_paths=int(totals["before"]),
                after_paths=int(totals["after"]),
                paths_added=int(totals["added"]),
                paths_removed=int(totals["removed"]),
                before_disk_usage=int(before["disk_usage_bytes"]),
                after_disk_usage=int(after["disk_usage_bytes"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HlplayError(f"not a closure diff: {exc}") from None


def _single_json(row: PackageRow, versions: tuple[str, ...], size: int) -> dict[str, Any]:
    return {
        "pname": row.pname,
        "selection": row.selection,
        "versions": list(versions),
        "size_bytes": size,
    }


# --- computing a diff -----------------------------------------------------------------


def _group(
    sizes: Mapping[str, int], names: dict[str, tuple[str, str]]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(pname -> versions, pname -> total NAR size); ``names`` caches parses across closures."""
    versions: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for path, size in sizes.items():
        parsed = names.get(path)
        if parsed is None:
            parsed = names[path] = pname_version(path)
        pname, version = parsed
        found = versions.get(pname)
        if found is None:
            versions[pname] = [version]
            totals[pname] = size
        else:
            found.append(version)
            totals[pname] += size
    return versions, totals


def _pnames(paths: Iterable[str], names: dict[str, tuple[str, str]]) -> set[str]:
    out = set()
    for path in paths:
        parsed = names.get(path)
        if parsed is None:
            parsed = names[path] = pname_version(path)
        out.add(parsed[0])
    return out


def _state(before: list[str], after: list[str]) -> str:
    if compare_versions(before[-1], after[0]) < 0:
        return UPGRADED
    if compare_versions(before[0], after[-1]) > 0:
        return DOWNGRADED
    return CHANGED


def diff_closures(
    before: Closure,
    after: Closure,
    *,
    before_label: str | None = None,
    after_label: str | None = None,
) -> ClosureDiff:
    """Compare two closures package by package, as ``nvd diff`` does."""
    names: dict[str, tuple[str, str]] = {}
    old, old_size = _group(before.sizes, names)
    new, new_size = _group(after.sizes, names)
    if before.sw_references is not None and after.sw_references is not None:
        sel_old = _pnames(before.sw_references, names)
        sel_new = _pnames(after.sw_references, names)
    else:
        sel_old = _pnames(before.root_references, names)
        sel_new = _pnames(after.root_references, names)

    def marker(pname: str) -> str:
        return selection_marker(pname in sel_old, pname in sel_new)

    changes: list[PackageRow] = []
    selection: list[PackageRow] = []
    for pname in sorted(old.keys() & new.keys()):
        vb, va = old[pname], new[pname]
        if len(vb) == len(va) == 1 and vb[0] == va[0]:
            ob, oa = vb, va  # the common case, no sorting needed
        else:
            ob, oa = sort_versions(vb), sort_versions(va)
        sb, sa = old_size[pname], new_size[pname]
        if ob != oa:
            changes.append(
                PackageRow(pname, _state(ob, oa), marker(pname), tuple(ob), tuple(oa), sb, sa)
            )
        elif (pname in sel_old) != (pname in sel_new):
            selection.append(
                PackageRow(pname, CHANGED, marker(pname), tuple(ob), tuple(oa), sb, sa)
            )
    added = [
        PackageRow(p, ADDED, marker(p), (), tuple(sort_versions(new[p])), 0, new_size[p])
        for p in sorted(new.keys() - old.keys())
    ]
    removed = [
        PackageRow(p, REMOVED, marker(p), tuple(sort_versions(old[p])), (), old_size[p], 0)
        for p in sorted(old.keys() - new.keys())
    ]
    both = before.paths & after.paths
    return ClosureDiff(
        before_root=before.root,
        after_root=after.root,
        before_label=before.root if before_label is None else before_label,
        after_label=after.root if after_label is None else after_label,
        changes=tuple(changes),
        selection=tuple(selection),
        added=tuple(added),
        removed=tuple(removed),
        before_paths=len(before),
        after_paths=len(after),
        paths_added=len(after) - len(both),
        paths_removed=len(before) - len(both),
        before_disk_usage=before.disk_usage,
        after_disk_usage=after.disk_usage,
    )


def diff_paths(a: str, b: str, store: str | None = None, *, method: str = "auto") -> ClosureDiff:
    """Diff two store paths, profiles or profile generations (``system-41-link``)."""
    return diff_closures(
        closure(a, store, method=method),
        closure(b, store, method=method),
        before_label=a,
        after_label=b,
    )


async def diff_paths_async(
    a: str, b: str, store: str | None = None, *, method: str = "auto"
) -> ClosureDiff:
    """:func:`diff_paths` without blocking the event loop."""
    import asyncio  # not at the top: the CLI's start-up time counts

    return await asyncio.to_thread(diff_paths, a, b, store, method=method)
