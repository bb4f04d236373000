"""Small readers over tree-sitter Nix nodes: names, literal values, strings.

Nothing here evaluates Nix. ``literal`` answers only for values written out
in the source (strings without interpolation, booleans, numbers, lists of
those), seen through the module system's priority wrappers (``mkForce x``,
``mkDefault x`` …); anything else is :data:`UNKNOWN`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tree_sitter import Node


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = _Unknown()
DYNAMIC = "${…}"  # an attribute name computed at evaluation time

# Functions whose result is their last argument with a priority or order attached.
VALUE_WRAPPERS = frozenset(
    {"mkForce", "mkDefault", "mkOverride", "mkOptionDefault", "mkVMOverride",
     "mkImageMediaOverride", "mkBefore", "mkAfter", "mkOrder"}
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def text(node: Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


def last_name(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def dotted_name(node: Node, depth: int = 0) -> str:
    """``pkgs.lib.mkForce`` for a variable or a select of plain names; ``""`` otherwise."""
    while node.type == "parenthesized_expression":
        inner = node.child_by_field_name("expression")
        if inner is None:
            return ""
        node = inner
    if depth > 32:
        return ""
    kind = node.type
    if kind == "variable_expression":
        return text(node)
    if kind == "select_expression":
        if node.child_by_field_name("default") is not None:
            return ""
        base = node.child_by_field_name("expression")
        path = node.child_by_field_name("attrpath")
        if base is None or path is None:
            return ""
        head = dotted_name(base, depth + 1)
        if not head:
            return ""
        parts = attr_names(path)
        if DYNAMIC in parts:
            return ""
        return ".".join([head, *parts])
    return ""


def attr_names(attrpath: Node) -> list[str]:
    """The components of an attribute path; computed ones become ``${…}``."""
    out: list[str] = []
    for child in attrpath.named_children:
        kind = child.type
        if kind == "identifier":
            out.append(text(child))
        elif kind == "string_expression":
            value = string_value(child)
            out.append(value if isinstance(value, str) else DYNAMIC)
        elif kind != "comment":
            out.append(DYNAMIC)
    return out


def flatten_apply(node: Node) -> tuple[Node, list[Node]]:
    """``f a b`` -> (f, [a, b]): curried application seen as one call."""
    args: list[Node] = []
    while node.type == "apply_expression":
        arg = node.child_by_field_name("argument")
        fun = node.child_by_field_name("function")
        if arg is None or fun is None:
            break
        args.append(arg)
        node = fun
    args.reverse()
    return node, args


def unwrap(node: Node) -> Node:
    """Look through parentheses and priority wrappers to the value written."""
    while True:
        kind = node.type
        if kind == "parenthesized_expression":
            inner = node.child_by_field_name("expression")
            if inner is None:
                return node
            node = inner
        elif kind == "apply_expression":
            head, args = flatten_apply(node)
            if not args or last_name(dotted_name(head)) not in VALUE_WRAPPERS:
                return node
            node = args[-1]
        else:
            return node


def string_value(node: Node) -> str | _Unknown:
    """The value of a string literal without interpolation."""
    parts: list[str] = []
    for child in node.named_children:
        kind = child.type
        if kind == "string_fragment":
            parts.append(text(child))
        elif kind == "escape_sequence":
            parts.append(_unescape(text(child)))
        elif kind == "dollar_escape":
            parts.append("$")
        elif kind == "comment":
            continue
        else:
            return UNKNOWN
    return "".join(parts)


def string_text(node: Node) -> str:
    """A string's text with each interpolation shown as ``${…}`` (for pattern matching)."""
    parts: list[str] = []
    for child in node.named_children:
        kind = child.type
        if kind == "string_fragment":
            parts.append(text(child))
        elif kind == "escape_sequence":
            parts.append(_unescape(text(child)))
        elif kind == "dollar_escape":
            parts.append("$")
        else:
            parts.append(DYNAMIC)
    return "".join(parts)


def _unescape(seq: str) -> str:
    # "\n" in a "…" string, "''\n" in a ''…'' string, "'''" for two quotes
    if seq == "'''":
        return "''"
    body = seq[-1:]
    return _ESCAPES.get(body, body)


def is_string(node: Node) -> bool:
    return node.type in ("string_expression", "indented_string_expression")


def literal(node: Node, depth: int = 0) -> Any:
    """The value written in the source, or UNKNOWN (also for lists nested too deep)."""
    if depth > 32:
        return UNKNOWN
    node = unwrap(node)
    kind = node.type
    if kind in ("string_expression", "indented_string_expression"):
        return string_value(node)
    if kind == "variable_expression":
        name = text(node)
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "null":
            return None
        return UNKNOWN
    if kind == "integer_expression":
        try:
            return int(text(node))
        except ValueError:
            return UNKNOWN
    if kind == "float_expression":
        try:
            return float(text(node))
        except ValueError:
            return UNKNOWN
    if kind == "list_expression":
        return [literal(c, depth + 1) for c in node.named_children if c.type != "comment"]
    return UNKNOWN
