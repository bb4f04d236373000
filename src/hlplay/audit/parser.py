"""The Nix parser: tree-sitter with the Nix grammar, loaded on first use.

tree-sitter never fails on bad input: it returns a tree with ERROR and
MISSING nodes. :func:`parse` turns the first of those (and undecodable
bytes) into a :class:`SyntaxProblem` with a 1-based line and column, so a
broken file becomes one finding instead of an exception.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser, Tree

_local = threading.local()


def _parser() -> Parser:
    # Parsers are not thread-safe; the module runs audits in worker threads.
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter
        import tree_sitter_nix

        parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_nix.language()))
        _local.parser = parser
    return parser


@dataclass(frozen=True)
class SyntaxProblem:
    """Why a file cannot be audited, and where (1-based line, byte offset in the line)."""

    message: str
    row: int  # 0-based
    byte_col: int  # 0-based, in bytes


@dataclass
class Parsed:
    tree: Tree | None
    problem: SyntaxProblem | None


def parse(source: bytes) -> Parsed:
    """Parse Nix source; ``problem`` is set when the bytes are not UTF-8 or not valid Nix."""
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = source.count(b"\n", 0, exc.start)
        line_start = source.rfind(b"\n", 0, exc.start) + 1
        bad = source[exc.start : exc.start + 1].hex()
        return Parsed(
            None, SyntaxProblem(f"not valid UTF-8 (byte 0x{bad})", row, exc.start - line_start)
        )
    tree = _parser().parse(source)
    root = tree.root_node
    if root.has_error:
        patched = _without_trailing_formal_commas(source, root)
        if patched is not None:
            retry = _parser().parse(patched)
            if not retry.root_node.has_error:
                tree, root = retry, retry.root_node
    if root.has_error:
        node = _first_error(root)
        if node is not None:
            return Parsed(tree, SyntaxProblem(_describe(node), *node.start_point))
    if root.named_child_count == 0 or all(c.type == "comment" for c in root.named_children):
        end = root.end_point
        return Parsed(tree, SyntaxProblem("syntax error: the file has no expression", *end))
    return Parsed(tree, None)


_TRAILING_COMMA = re.compile(rb",((?:\s|#[^\n]*|/\*.*?\*/)*)\}", re.DOTALL)


def _without_trailing_formal_commas(source: bytes, root: Node) -> bytes | None:
    """The source with ``{ a, b, }:``'s last comma blanked, or None if there is none.

    Nix accepts a comma before the closing brace of a function's set pattern;
    the grammar does not. A space of the same length keeps every offset.
    """
    spans: list[tuple[int, int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "formals":
            spans.append((node.start_byte, node.end_byte))
            continue
        stack.extend(c for c in node.children if c.has_error)
    if not spans:
        return None
    out = bytearray(source)
    changed = False
    for start, end in spans:
        # the closing brace may lie outside a formals node cut short by the error
        stop = source.find(b"}", end - 1)
        window = source[start : (stop + 1 if stop >= 0 else end)]
        for m in _TRAILING_COMMA.finditer(window):
            out[start + m.start()] = ord(" ")
            changed = True
    return bytes(out) if changed else None


def _first_error(root: Node) -> Node | None:
    """The first ERROR or MISSING node in source order (iterative: trees nest deep)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            return node
        stack.extend(
            c for c in reversed(node.children) if c.has_error or c.is_missing or c.is_error
        )
    return None


def _describe(node: Node) -> str:
    if node.is_missing:
        return f"syntax error: missing '{_token_name(node)}'"
    text = _node_text(node)
    first = next((c for c in node.children if not c.children), None)
    if first is not None and first.text:
        text = _node_text(first)
    snippet = text.splitlines()[0] if text.strip() else text
    if len(snippet) > 24:
        snippet = snippet[:24] + "…"
    if not snippet:
        return "syntax error: unexpected end of file"
    return f"syntax error: unexpected '{snippet}'"


def _token_name(node: Node) -> str:
    kind = node.type
    return "name" if kind == "identifier" else kind


def _node_text(node: Any) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
