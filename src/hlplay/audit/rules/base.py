"""What a rule is, and the per-file context rules read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.model import Binding, Collected, Path

if TYPE_CHECKING:
    from tree_sitter import Node

ANTI_PATTERN = "anti-pattern"
SECURITY = "security"
META = "meta"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    family: str
    summary: str  # what it catches, one line
    hint: str  # how to fix, one line


@dataclass(frozen=True)
class Hit:
    """A rule matched at a byte offset of the file."""

    rule: str
    byte: int
    message: str
    hint: str | None = None  # overrides the rule's hint


@dataclass
class FileContext:
    """One parsed file as the rules see it."""

    source: bytes
    data: Collected
    mkforce_limit: int = 5
    _siblings: dict[Path, list[Binding]] | None = field(default=None, repr=False)

    def hit(self, rule: str, node: Node, message: str, hint: str | None = None) -> Hit:
        return Hit(rule, node.start_byte, message, hint)

    def hit_at(self, rule: str, byte: int, message: str, hint: str | None = None) -> Hit:
        return Hit(rule, byte, message, hint)

    def siblings(self, path: Path) -> list[Binding]:
        """Bindings of the attribute set at ``path`` (e.g. ``mode``'s neighbours)."""
        if self._siblings is None:
            index: dict[Path, list[Binding]] = {}
            for b in self.data.bindings:
                index.setdefault(b.path[:-1], []).append(b)
            self._siblings = index
        return self._siblings.get(path, [])

    def string_lines(
        self, node: Node, pattern: re.Pattern[bytes]
    ) -> Iterator[tuple[int, re.Match[bytes]]]:
        """Matches of ``pattern`` inside a string literal, with their byte offsets.

        Patterns use :data:`LINE_START` to match at the start of any line of the
        string, including lines separated by a ``\\n`` escape.
        """
        node = nixast.unwrap(node)
        if not nixast.is_string(node):
            return
        raw = bytearray(node.text or b"")
        # blank the opening quote(s) so that `^` matches the string's first line
        quote = 2 if node.type == "indented_string_expression" else 1
        raw[:quote] = b" " * quote
        for m in pattern.finditer(bytes(raw)):
            yield node.start_byte + m.start(1 if m.groups() else 0), m


LINE_START = rb"(?:^|\\n)[ \t]*"


def suffix(path: Path, *tail: str) -> bool:
    return len(path) >= len(tail) and path[-len(tail) :] == tail


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(name: str) -> list[str]:
    """``initialPassword`` -> ["initial", "password"]; ``ssh_host_key`` -> [..., "key"]."""
    return [w.lower() for w in _WORD.findall(name)]


def show_path(path: Path) -> str:
    return ".".join(p if _plain(p) else f'"{p}"' for p in path)


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")


def _plain(part: str) -> bool:
    return part == nixast.DYNAMIC or bool(_PLAIN.match(part))
