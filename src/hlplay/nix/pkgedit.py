"""Find a package in a configuration's Nix files and set its version and source hash.

Nothing is evaluated: the files are parsed with the Nix grammar (tree-sitter,
as the audit does) and only literal strings are touched, so comments, layout
and everything else stay byte for byte as they were.

A package is found by its attribute name (``motd = import ./motd.nix { … };``,
``nginx = callPackage ./nginx.nix { };``, ``hello = mkDerivation { … };``) or
by ``pname = "NAME";``. In its expression (the imported file, or the value of
the binding) there must be one ``version = "…";`` written as a plain string.
The source hash is the one ``sha256 = "…";`` or ``hash = "…";`` there; the
attribute set that holds it says where the source is: ``path = ./src-${version}.tar``
(``builtins.path``, flat when ``recursive = false``), or ``url = "…${version}…";``
(``fetchurl``; ``fetchzip``/``fetchTarball`` hash the unpacked tree). Only
``${version}`` (and ``${pname}``) may be interpolated there: anything else needs
the hash given by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hlplay.audit import nixast
from hlplay.errors import HlplayError, Location, did_you_mean

if TYPE_CHECKING:
    from tree_sitter import Node

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")
HASH_ATTRS = ("sha256", "hash")
CALLERS = frozenset({"import", "callPackage"})
UNPACKING_FETCHERS = frozenset({"fetchzip", "fetchTarball"})
SKIP_DIRS = frozenset({".git", "result", "node_modules"})


class PackageError(HlplayError):
    """A package that cannot be found or edited."""


@dataclass(frozen=True)
class Literal:
    """A string literal in a file: its value and where its content lies."""

    value: str
    start: int  # byte offset of the first character inside the quotes
    end: int  # byte offset of the closing quote
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class SourceSpec:
    """Where a package's source comes from, with ``${version}`` still in it."""

    kind: str  # "path" or "url"
    template: str
    fetcher: str  # "builtins.path", "fetchurl", …
    recursive: bool  # NAR hash of a tree (builtins.path default) rather than a flat file hash
    unpack: bool  # the hash is of the unpacked archive (fetchzip, fetchTarball)
    line: int


@dataclass(frozen=True)
class PackageSite:
    """A package's version and source hash, as written in one file."""

    name: str
    file: Path
    version: Literal
    pname: str | None = None
    hash_attr: str | None = None  # "sha256" or "hash"
    hash: Literal | None = None
    source: SourceSpec | None = None

    def location(self, repo: Path | None = None) -> Location:
        return Location(_rel(self.file, repo), self.version.line, self.version.column)


def validate_version(version: str) -> None:
    if not VERSION_RE.fullmatch(version):
        raise PackageError(
            f"invalid version {version!r}: letters, digits and . _ + ~ - only, "
            "starting with a letter or digit"
        )


def _rel(path: Path, repo: Path | None) -> str:
    if repo is not None:
        try:
            return str(path.relative_to(repo))
        except ValueError:
            pass
    return str(path)


# -- reading ------------------------------------------------------------------------


class _Files:
    """Parsed .nix files of a repository, parsed once each."""

    def __init__(self, repo: Path, only: Path | None = None) -> None:
        self.repo = repo
        self.only = only
        self._trees: dict[Path, tuple[bytes, Node]] = {}

    def all(self) -> list[Path]:
        if self.only is not None:
            return [self.only]
        out: list[Path] = []
        for root, dirs, files in os.walk(self.repo):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            out += [Path(root) / f for f in sorted(files) if f.endswith(".nix")]
        return out

    def root(self, path: Path) -> Node | None:
        if path not in self._trees:
            from hlplay.audit.parser import parse

            try:
                data = path.read_bytes()
            except OSError:
                return None
            parsed = parse(data)
            if parsed.tree is None or parsed.problem is not None:
                return None
            self._trees[path] = (data, parsed.tree.root_node)
        return self._trees[path][1]


def _walk(node: Node) -> list[Node]:
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(reversed(n.named_children))
    return out


def _bindings(node: Node, name: str) -> list[Node]:
    out = []
    for n in _walk(node):
        if n.type != "binding":
            continue
        path = n.child_by_field_name("attrpath")
        if path is not None and nixast.attr_names(path)[-1:] == [name]:
            out.append(n)
    return out


def _value(binding: Node) -> Node | None:
    return binding.child_by_field_name("expression")


def _literal(node: Node | None) -> Literal | None:
    """A plain ``"…"`` string (no interpolation) with its content's position."""
    if node is None or node.type != "string_expression":
        return None
    value = nixast.string_value(node)
    if not isinstance(value, str):
        return None
    row, col = node.start_point
    return Literal(value, node.start_byte + 1, node.end_byte - 1, row + 1, col + 2)


def _imported_file(value: Node, file: Path) -> Path | None:
    """``import ./x.nix …`` / ``callPackage ./x.nix …``: the file it reads."""
    head, args = nixast.flatten_apply(value)
    if not args or nixast.last_name(nixast.dotted_name(head)) not in CALLERS:
        return None
    arg = args[0]
    if arg.type != "path_expression" or any(c.type == "interpolation" for c in arg.named_children):
        return None
    target = (file.parent / nixast.text(arg)).resolve()
    if target.is_dir():
        target = target / "default.nix"
    return target if target.is_file() else None


def _pname_sets(root: Node) -> dict[str, Node]:
    """Attribute sets with ``pname = "…";``, by pname."""
    out: dict[str, Node] = {}
    for binding in _bindings(root, "pname"):
        lit = _literal(_value(binding))
        owner = binding.parent.parent if binding.parent is not None else None
        if lit is not None and owner is not None:
            out.setdefault(lit.value, owner)
    return out


def known_packages(repo: Path) -> list[str]:
    """Names a package can be found by: pnames, and bindings that lead to a version."""
    files = _Files(repo)
    names: set[str] = set()
    for path in files.all():
        root = files.root(path)
        if root is None:
            continue
        names.update(_pname_sets(root))
        for binding in _walk(root):
            value = _value(binding) if binding.type == "binding" else None
            attrpath = binding.child_by_field_name("attrpath") if value is not None else None
            if value is None or attrpath is None:
                continue
            name = nixast.attr_names(attrpath)[-1]
            if name in names or name == nixast.DYNAMIC:
                continue
            target = _imported_file(value, path)
            region = files.root(target) if target is not None else value
            try:
                found = region is not None and _site_in(files, name, target or path, region)
            except PackageError:  # several versions: a package set, not a package
                found = False
            if found:
                names.add(name)
    return sorted(names)


def _regions(files: _Files, name: str) -> list[tuple[Path, Node]]:
    """The expressions that may define package ``name`` (file, node)."""
    out: list[tuple[Path, Node]] = []
    for path in files.all():
        root = files.root(path)
        if root is None:
            continue
        for binding in _bindings(root, name):
            value = _value(binding)
            if value is None:
                continue
            target = _imported_file(value, path)
            if target is not None:
                troot = files.root(target)
                if troot is not None:
                    out.append((target, troot))
                continue
            out.append((path, value))
        owner = _pname_sets(root).get(name)
        if owner is not None:
            out.append((path, owner))
    return out


def _site_in(files: _Files, name: str, path: Path, region: Node) -> PackageSite | None:
    """The package site inside one region, or None when it has no version there."""
    versions = [lit for b in _bindings(region, "version") if (lit := _literal(_value(b)))]
    if not versions:
        # `inherit version;` from an enclosing `let`: look at the whole file
        root = files.root(path)
        if root is not None and root is not region and _inherits_version(region):
            return _site_in(files, name, path, root)
        return None
    if len(versions) > 1:
        lines = ", ".join(str(v.line) for v in versions)
        raise PackageError(
            f"package '{name}' has several versions written in {path.name} (lines {lines}); "
            "give the file of the one to change",
            Location(str(path), versions[0].line, versions[0].column),
        )
    pnames = [lit.value for b in _bindings(region, "pname") if (lit := _literal(_value(b)))]
    hashes: list[tuple[str, Literal, Node]] = []
    for attr in HASH_ATTRS:
        for b in _bindings(region, attr):
            lit = _literal(_value(b))
            if lit is not None:
                hashes.append((attr, lit, b))
    if len(hashes) > 1:
        lines = ", ".join(str(h[1].line) for h in hashes)
        raise PackageError(
            f"package '{name}' has several source hashes in {path.name} (lines {lines}); "
            "this edits packages with one source",
            Location(str(path), hashes[0][1].line, hashes[0][1].column),
        )
    if not hashes:
        return PackageSite(name, path, versions[0], pnames[0] if pnames else None)
    attr, lit, binding = hashes[0]
    return PackageSite(
        name, path, versions[0], pnames[0] if pnames else None, attr, lit, _source(binding)
    )


def _inherits_version(region: Node) -> bool:
    return any(
        n.type == "inherited_attrs" and any(nixast.text(c) == "version" for c in n.named_children)
        for n in _walk(region)
    )


def _source(hash_binding: Node) -> SourceSpec | None:
    """The source described by the attribute set holding the hash."""
    bset = hash_binding.parent
    attrs = bset.parent if bset is not None else None
    if bset is None or attrs is None:
        return None
    fetcher = ""
    call = attrs.parent
    if call is not None and call.type == "apply_expression":
        head, _ = nixast.flatten_apply(call)
        fetcher = nixast.dotted_name(head)
    siblings = {
        nixast.attr_names(p)[-1]: b
        for b in bset.named_children
        if b.type == "binding" and (p := b.child_by_field_name("attrpath")) is not None
    }
    short = nixast.last_name(fetcher)
    unpack = short in UNPACKING_FETCHERS
    if "url" in siblings or "urls" in siblings:
        node = _value(siblings["url"] if "url" in siblings else siblings["urls"])
        if node is not None and node.type == "list_expression":
            node = next((c for c in node.named_children if c.type == "string_expression"), None)
        if node is None or node.type != "string_expression":
            return None
        return SourceSpec("url", _template(node), fetcher or "fetchurl", unpack, unpack,
                          node.start_point[0] + 1)
    if "path" in siblings:
        node = _value(siblings["path"])
        if node is None or node.type not in ("path_expression", "string_expression"):
            return None
        recursive = True  # builtins.path hashes the NAR unless told otherwise
        if "recursive" in siblings:
            value = _value(siblings["recursive"])
            recursive = not (value is not None and nixast.literal(value) is False)
        return SourceSpec("path", _template(node), fetcher or "builtins.path", recursive, False,
                          node.start_point[0] + 1)
    return None


def _template(node: Node) -> str:
    """A path or string's text with each interpolation kept as ``${expr}``."""
    parts: list[str] = []
    for child in node.named_children:
        if child.type in ("path_fragment", "string_fragment", "interpolation"):
            parts.append(nixast.text(child))
        elif child.type == "escape_sequence":
            parts.append(nixast._unescape(nixast.text(child)))
        elif child.type == "dollar_escape":
            parts.append("$")
    return "".join(parts) if parts else nixast.text(node)


def find_package(repo: str | Path, name: str, file: str | Path | None = None) -> PackageSite:
    """The one place package ``name`` is defined with a version; PackageError otherwise."""
    root = Path(repo).resolve()
    only = None
    if file is not None:
        only = (root / file).resolve()
        if not only.is_file():
            raise PackageError(f"no file {file} in {root}")
    files = _Files(root, only)
    sites: dict[Path, PackageSite] = {}
    for path, region in _regions(files, name):
        site = _site_in(files, name, path, region)
        if site is not None:
            sites.setdefault(site.file, site)
    if not sites:
        known = known_packages(root)
        hint = did_you_mean(name, known)
        if not hint and known:
            hint = f" (known: {', '.join(known)})"
        raise PackageError(
            f"unknown package '{name}'{hint}: this configuration does not define it with a "
            "version (a package from a flake input moves with flake-update)"
        )
    if len(sites) > 1:
        where = ", ".join(_rel(p, root) for p in sites)
        raise PackageError(f"package '{name}' is defined in several files ({where}): give one")
    return next(iter(sites.values()))


# -- the new version's source --------------------------------------------------------


def source_for(site: PackageSite, version: str, repo: Path | None = None) -> str:
    """The new version's source: an absolute path or a URL. PackageError if it is missing."""
    src = site.source
    if src is None:
        raise PackageError(f"package '{site.name}' has a hash but no url or path next to it: "
                           "give the new hash by hand", site.location(repo))
    text = src.template
    values = {"version": version}
    if site.pname:
        values["pname"] = site.pname

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr not in values:
            raise PackageError(
                f"the source of '{site.name}' interpolates '{expr}', which is not known "
                "without evaluating Nix: give the new hash by hand",
                Location(_rel(site.file, repo), src.line),
            )
        return values[expr]

    text = re.sub(r"\$\{([^}]*)\}", sub, text)
    if src.kind == "url":
        return text
    if text.startswith("<"):
        raise PackageError(f"the source of '{site.name}' is a search path ({text}): "
                           "give the new hash by hand", Location(_rel(site.file, repo), src.line))
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (site.file.parent / path).resolve()
    if not path.exists():
        raise PackageError(
            f"{site.name} {version}: no source {_rel(path, repo)} "
            f"(from {src.template} in {_rel(site.file, repo)}:{src.line})"
        )
    return str(path)


# -- writing --------------------------------------------------------------------------


def edit(site: PackageSite, version: str, new_hash: str | None) -> bytes:
    """The file's new bytes with the version (and the hash, when given) replaced."""
    validate_version(version)
    data = site.file.read_bytes()
    edits = [(site.version, version)]
    if new_hash is not None:
        if site.hash is None:
            raise PackageError(f"package '{site.name}' has no source hash to set")
        if any(c in new_hash for c in '"\\$\n'):
            raise PackageError(f"invalid hash {new_hash!r}")
        edits.append((site.hash, new_hash))
    for lit, value in sorted(edits, key=lambda e: e[0].start, reverse=True):
        data = data[: lit.start] + value.encode() + data[lit.end :]
    return data
