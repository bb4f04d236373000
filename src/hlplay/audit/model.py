"""One pass over a parsed file, collecting what the rules look at.

The walk builds the *full attribute path* of every binding, so
``a.b.c = v;`` and ``a = { b = { c = v; }; };`` both give ``("a", "b", "c")``.
The path carries on through what the module system treats as the same place
(``lib.mkIf cond { … }``, ``mkMerge [ … ]``, ``mkDefault``, ``//``, ``with``,
``let … in``, ``if``) and starts afresh anywhere else (list elements, function
bodies, arguments of other functions), where an attribute set is a new value.

It also records every call (curried applications seen whole), ``with`` at
module scope (the spine from the file's root through the module function,
``let``, ``with`` and ``assert``), ``rec`` sets and ``<…>`` lookup paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hlplay.audit import nixast

if TYPE_CHECKING:
    from tree_sitter import Node, Tree

Path = tuple[str, ...]

# Calls through which an attribute set stays at the same option path.
PATH_PRESERVING = frozenset(
    {"mkIf", "mkMerge", "mkDefault", "mkForce", "mkOverride", "mkOptionDefault",
     "mkBefore", "mkAfter", "mkOrder", "mkVMOverride", "optionalAttrs", "mkImageMediaOverride"}
)


@dataclass
class Binding:
    """``path = value;``; ``path`` is the full attribute path from the enclosing value."""

    path: Path
    node: Node  # the binding; findings point at its first attribute
    value: Node
    in_let: bool = False


@dataclass
class Call:
    """``f a b …``: ``name`` is the dotted head (``builtins.fetchGit``), or ``""``."""

    name: str
    node: Node
    args: list[Node]

    @property
    def short(self) -> str:
        return nixast.last_name(self.name)


@dataclass
class Inherit:
    """``inherit a b;`` / ``inherit (x) a b;`` inside an attribute set at ``path``."""

    path: Path
    names: list[str]
    node: Node


@dataclass
class Collected:
    bindings: list[Binding] = field(default_factory=list)
    inherits: list[Inherit] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    module_withs: list[Node] = field(default_factory=list)
    recs: list[Node] = field(default_factory=list)
    lookup_paths: list[Node] = field(default_factory=list)


_LEAVES = frozenset(
    {"identifier", "comment", "string_fragment", "escape_sequence", "dollar_escape",
     "integer_expression", "float_expression", "path_fragment", "uri_expression", "ellipses",
     "keyword"}
)


def collect(tree: Tree) -> Collected:
    out = Collected()
    _Walker(out).visit(tree.root_node, (), True)
    return out


class _Walker:
    def __init__(self, out: Collected) -> None:
        self.out = out

    def visit(self, node: Node, path: Path, spine: bool) -> None:
        kind = node.type
        if kind in _LEAVES:
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, node, path, spine)
            return
        if kind == "spath_expression":
            self.out.lookup_paths.append(node)
            return
        for child in node.named_children:
            self.visit(child, (), False)

    # --- handlers ---------------------------------------------------------

    def _source(self, node: Node, path: Path, spine: bool) -> None:
        for child in node.named_children:
            self.visit(child, (), True)

    def _function(self, node: Node, path: Path, spine: bool) -> None:
        body = node.child_by_field_name("body")
        for child in node.named_children:
            if body is not None and child == body:
                # the module function's body is still module scope
                self.visit(child, (), spine)
            else:
                self.visit(child, (), False)

    def _with(self, node: Node, path: Path, spine: bool) -> None:
        if spine:
            self.out.module_withs.append(node)
        env = node.child_by_field_name("environment")
        body = node.child_by_field_name("body")
        if env is not None:
            self.visit(env, (), False)
        if body is not None:
            self.visit(body, path, spine)

    def _let(self, node: Node, path: Path, spine: bool) -> None:
        body = node.child_by_field_name("body")
        for child in node.named_children:
            if child.type == "binding_set":
                self._bindings(child, (), in_let=True)
            elif body is not None and child == body:
                self.visit(child, path, spine)
            else:
                self.visit(child, (), False)

    def _assert(self, node: Node, path: Path, spine: bool) -> None:
        cond = node.child_by_field_name("condition")
        body = node.child_by_field_name("body")
        if cond is not None:
            self.visit(cond, (), False)
        if body is not None:
            self.visit(body, path, spine)

    def _paren(self, node: Node, path: Path, spine: bool) -> None:
        for child in node.named_children:
            self.visit(child, path, spine)

    def _attrset(self, node: Node, path: Path, spine: bool) -> None:
        if node.type == "rec_attrset_expression":
            self.out.recs.append(node)
        for child in node.named_children:
            if child.type == "binding_set":
                self._bindings(child, path, in_let=False)

    def _let_attrset(self, node: Node, path: Path, spine: bool) -> None:
        for child in node.named_children:
            if child.type == "binding_set":
                self._bindings(child, (), in_let=True)

    def _bindings(self, node: Node, path: Path, in_let: bool) -> None:
        for child in node.named_children:
            kind = child.type
            if kind == "binding":
                attrpath = child.child_by_field_name("attrpath")
                value = child.child_by_field_name("expression")
                if attrpath is None or value is None:
                    continue
                full = path + tuple(nixast.attr_names(attrpath))
                self.out.bindings.append(Binding(full, child, value, in_let))
                for part in attrpath.named_children:
                    if part.type != "identifier":
                        self.visit(part, (), False)
                self.visit(value, full, False)
            elif kind in ("inherit", "inherit_from"):
                attrs = child.child_by_field_name("attrs")
                names = nixast.attr_names(attrs) if attrs is not None else []
                self.out.inherits.append(Inherit(path, names, child))
                source = child.child_by_field_name("expression")
                if source is not None:
                    self.visit(source, (), False)

    def _apply(self, node: Node, path: Path, spine: bool) -> None:
        head, args = nixast.flatten_apply(node)
        name = nixast.dotted_name(head)
        self.out.calls.append(Call(name, node, args))
        short = nixast.last_name(name)
        self.visit(head, (), False)
        if short in PATH_PRESERVING and args:
            for arg in args[:-1]:
                self.visit(arg, (), False)
            last = args[-1]
            if short == "mkMerge" and last.type == "list_expression":
                for element in last.named_children:
                    self.visit(element, path, False)
            else:
                self.visit(last, path, False)
            return
        for arg in args:
            self.visit(arg, (), False)

    def _binary(self, node: Node, path: Path, spine: bool) -> None:
        op = node.child_by_field_name("operator")
        keep = path if op is not None and op.type == "//" else ()
        for child in node.named_children:
            self.visit(child, keep, False)

    def _if(self, node: Node, path: Path, spine: bool) -> None:
        cond = node.child_by_field_name("condition")
        for child in node.named_children:
            self.visit(child, () if child == cond else path, False)


_HANDLERS = {
    "source_code": _Walker._source,
    "function_expression": _Walker._function,
    "with_expression": _Walker._with,
    "let_expression": _Walker._let,
    "assert_expression": _Walker._assert,
    "parenthesized_expression": _Walker._paren,
    "attrset_expression": _Walker._attrset,
    "rec_attrset_expression": _Walker._attrset,
    "let_attrset_expression": _Walker._let_attrset,
    "apply_expression": _Walker._apply,
    "binary_expression": _Walker._binary,
    "if_expression": _Walker._if,
}
