"""The text form of a closure diff, line for line as nvd prints it.

::

    <<< /nix/var/nix/profiles/system-41-link
    >>> ./result
    Version changes:
    [U*]  #1  openssl  3.0.13 -> 3.0.14
    Added packages:
    [A.]  #1  libfoo   1.2
    Closure size: 1200 -> 1204 (12 paths added, 8 paths removed, delta +4, disk usage +3.1MiB)

This module sits below :mod:`hlplay.nix.diff`: it renders anything shaped like
a diff (:class:`DiffView`, :class:`RowView`, which ``ClosureDiff`` and
``PackageRow`` are) and imports nothing from it, so ``diff`` can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class RowView(Protocol):
    """One package row, as the text needs it (``hlplay.nix.diff.PackageRow``)."""

    @property
    def pname(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def selection(self) -> str: ...
    @property
    def before(self) -> tuple[str, ...]: ...
    @property
    def after(self) -> tuple[str, ...]: ...
    @property
    def selected(self) -> bool: ...
    @property
    def versions(self) -> tuple[str, ...]: ...


class DiffView(Protocol):
    """A closure diff, as the text needs it (``hlplay.nix.diff.ClosureDiff``)."""

    @property
    def before_label(self) -> str: ...
    @property
    def after_label(self) -> str: ...
    @property
    def changes(self) -> Sequence[RowView]: ...
    @property
    def selection(self) -> Sequence[RowView]: ...
    @property
    def added(self) -> Sequence[RowView]: ...
    @property
    def removed(self) -> Sequence[RowView]: ...
    @property
    def has_package_changes(self) -> bool: ...
    @property
    def before_paths(self) -> int: ...
    @property
    def after_paths(self) -> int: ...
    @property
    def paths_added(self) -> int: ...
    @property
    def paths_removed(self) -> int: ...
    @property
    def delta(self) -> int: ...
    @property
    def disk_usage_delta(self) -> int: ...


_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

# SGR colours, the ones nvd uses.
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_RED, _GREEN, _YELLOW = "\x1b[31m", "\x1b[32m", "\x1b[33m"
_BRIGHT_GREEN = "\x1b[92m"
_STATE_COLOURS = {
    "A": "\x1b[92m",  # bright green
    "R": "\x1b[91m",  # bright red
    "U": "\x1b[96m",  # bright cyan
    "D": "\x1b[93m",  # bright yellow
    "C": "\x1b[95m",  # bright magenta
}


def render_bytes(size: int, *, sign: bool = True) -> str:
    """``3250585`` -> ``+3.1MiB``; below 1 KiB in whole bytes (``+512B``)."""
    scaled = float(abs(size))
    unit = "B"
    for candidate in _UNITS:
        if scaled < 1024:
            break
        scaled /= 1024
        unit = candidate
    fmt = "+," if sign else ","
    if unit == "B":
        return f"{size:{fmt}d}B"
    value = -scaled if size < 0 else scaled
    return f"{value:{fmt}.1f}{unit}"


def _group_versions(versions: Sequence[str]) -> list[tuple[str, int]]:
    """Runs of equal versions: ``[1.0, 1.0, 2.0]`` -> ``[(1.0, 2), (2.0, 1)]``."""
    runs: list[tuple[str, int]] = []
    for version in versions:
        if runs and runs[-1][0] == version:
            runs[-1] = (version, runs[-1][1] + 1)
        else:
            runs.append((version, 1))
    return runs


def _common_prefix(texts: Sequence[str]) -> int:
    """Where the versions start to differ, moved back to the start of that word or number.

    ``1.15 -> 1.17`` highlights ``15`` and ``17``, not just the last digit;
    ``1.9.15p2 -> 1.9.15p5`` highlights only the final ``2`` and ``5``.
    """
    if not texts:
        return 0
    first = texts[0]
    end = len(first)
    for other in texts[1:]:
        i = 0
        while i < end and i < len(other) and first[i] == other[i]:
            i += 1
        end = i
        if end == 0:
            return 0
    if 0 < end < len(first) and first[end].isalnum():
        digit = first[end].isdigit()
        while end > 0 and first[end - 1].isalnum() and first[end - 1].isdigit() == digit:
            end -= 1
    return end


def _versions_text(versions: Sequence[str], colour: bool, cut: int | None, right: bool) -> str:
    if not versions:
        return "<no versions>"
    items = []
    for version, count in _group_versions(versions):
        text = version or "<none>"
        if colour and version:
            if cut is None:
                text = f"{_YELLOW}{text}{_RESET}"
            else:
                mark = _GREEN if right else _RED
                text = f"{_YELLOW}{text[:cut]}{mark}{text[cut:]}{_RESET}"
        items.append(text if count == 1 else f"{text} x{count}")
    return ", ".join(items)


def _section(title: str, rows: Sequence[RowView], colour: bool) -> list[str]:
    if not rows:
        return []
    lines = [title]
    num_width = len(str(len(rows)))
    name_width = max(len(r.pname) for r in rows)
    for i, row in enumerate(rows, 1):
        bold = _BOLD if colour and row.selected else ""
        state = row.state
        marker = row.selection
        pname = row.pname.ljust(name_width)
        if colour:
            name_colour = bold + (_BRIGHT_GREEN if row.selected else _GREEN)
            state = f"{bold}{_STATE_COLOURS.get(state, '')}{state}{_RESET}"
            marker = f"{name_colour}{marker}{_RESET}"
            pname = f"{name_colour}{pname}{_RESET}"
        if row.before and row.after and row.before != row.after:
            cut = None
            if colour:
                cut = _common_prefix([v for v in (*row.before, *row.after) if v])
            versions = (
                _versions_text(row.before, colour, cut, False)
                + " -> "
                + _versions_text(row.after, colour, cut, True)
            )
        else:
            versions = _versions_text(row.versions, colour, None, False)
        lines.append(f"[{state}{marker}]  #{i:0{num_width}d}  {pname}  {versions}")
    return lines


def closure_line(diff: DiffView) -> str:
    """The closing line: ``Closure size: 1200 -> 1204 (12 paths added, …)``."""
    return (
        f"Closure size: {diff.before_paths} -> {diff.after_paths} "
        f"({diff.paths_added} paths added, {diff.paths_removed} paths removed, "
        f"delta {diff.delta:+d}, disk usage {render_bytes(diff.disk_usage_delta)})"
    )


def render_text(diff: DiffView, *, color: bool = False, header: bool = True) -> str:
    """The whole diff as text, ending in a newline."""
    lines: list[str] = []
    if header:
        lines += [f"<<< {diff.before_label}", f">>> {diff.after_label}"]
    lines += _section("Version changes:", diff.changes, color)
    lines += _section("Selection state changes:", diff.selection, color)
    lines += _section("Added packages:", diff.added, color)
    lines += _section("Removed packages:", diff.removed, color)
    if not diff.has_package_changes:
        lines.append("No version or selection state changes.")
    lines.append(closure_line(diff))
    return "\n".join(lines) + "\n"
