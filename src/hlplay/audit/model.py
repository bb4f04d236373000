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
    _Walker(out).run(tree.root_node)
    return out


# A unit of work: the node, the attribute path it sits at, and whether it is on
# the module-scope spine. Bindings carry ``in_let`` in place of ``spine``.
_Item = tuple["Node", Path, bool]


class _Walker:
    """Pre-order walk with an explicit stack: generated files nest thousands deep."""

    def __init__(self, out: Collected) -> None:
        self.out = out
        self.pending: list[_Item] = []

    def run(self, root: Node) -> None:
        stack: list[_Item] = [(root, (), True)]
        pending = self.pending
        while stack:
            node, path, flag = stack.pop()
            self.visit(node, path, flag)
            if pending:
                # children go on the stack last-first so that they pop in source order
                pending.reverse()
                stack.extend(pending)
                pending.clear()

    def emit(self, node: Node, path: Path, spine: bool) -> None:
        self.pending.append((node, path, spine))

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
            self.emit(child, (), False)

    # --- handlers ---------------------------------------------------------

    def _source(self, node: Node, path: Path, spine: bool) -> None:
        for child in node.named_children:
            self.emit(child, (), True)

    def _function(self, node: Node, path: Path, spine: bool) -> None:
        body = node.child_by_field_name("body")
        for child in node.named_children:
            if body is not None and child == body:
                # the module function's body is still module scope
                self.emit(child, (), spine)
            else:
                self.emit(child, (), False)

    def _with(self, node: Node, path: Path, spine: bool) -> None:
        if spine:
            self.out.module_withs.append(node)
        env = node.child_by_field_name("environment")
        body = node.child_by_field_name("body")
        if env is not None:
            self.emit(env, (), False)
        if body is not None:
            self.emit(body, path, spine)

    def _let(self, node: Node, path: Path, spine: bool) -> None:
        body = node.child_by_field_name("body")
        for child in node.named_children:
            if child.type == "binding_set":
                self._bindings(child, (), in_let=True)
            elif body is not None and child == body:
                self.emit(child, path, spine)
            else:
                self.emit(child, (), False)

    def _assert(self, node: Node, path: Path, spine: bool) -> None:
        cond = node.child_by_field_name("condition")
        body = node.child_by_field_name("body")
        if cond is not None:
            self.emit(cond, (), False)
        if body is not None:
            self.emit(body, path, spine)

    def _paren(self, node: Node, path: Path, spine: bool) -> None:
        for child in node.named_children:
            self.emit(child, path, spine)

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
                self.pending.append((child, path, in_let))
            elif kind in ("inherit", "inherit_from"):
                attrs = child.child_by_field_name("attrs")
                names = nixast.attr_names(attrs) if attrs is not None else []
                self.out.inherits.append(Inherit(path, names, child))
                source = child.child_by_field_name("expression")
                if source is not None:
                    self.emit(source, (), False)

    def _binding(self, node: Node, path: Path, in_let: bool) -> None:
        attrpath = node.child_by_field_name("attrpath")
        value = node.child_by_field_name("expression")
        if attrpath is None or value is None:
            return
        full = path + tuple(nixast.attr_names(attrpath))
        self.out.bindings.append(Binding(full, node, value, in_let))
        for part in attrpath.named_children:
            if part.type != "identifier":
                self.emit(part, (), False)
        self.emit(value, full, False)

    def _apply(self, node: Node, path: Path, spine: bool) -> None:
        head, args = nixast.flatten_apply(node)
        name = nixast.dotted_name(head)
        self.out.calls.append(Call(name, node, args))
        short = nixast.last_name(name)
        self.emit(head, (), False)
        if short in PATH_PRESERVING and args:
            for arg in args[:-1]:
                self.emit(arg, (), False)
            last = args[-1]
            if short == "mkMerge" and last.type == "list_expression":
                for element in last.named_children:
                    self.emit(element, path, False)
            else:
                self.emit(last, path, False)
            return
        for arg in args:
            self.emit(arg, (), False)

    def _binary(self, node: Node, path: Path, spine: bool) -> None:
        op = node.child_by_field_name("operator")
        keep = path if op is not None and op.type == "//" else ()
        for child in node.named_children:
            self.emit(child, keep, False)

    def _if(self, node: Node, path: Path, spine: bool) -> None:
        cond = node.child_by_field_name("condition")
        for child in node.named_children:
            self.emit(child, () if child == cond else path, False)


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
    "binding": _Walker._binding,
    "apply_expression": _Walker._apply,
    "binary_expression": _Walker._binary,
    "if_expression": _Walker._if,
}
