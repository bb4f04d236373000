"""Reproducibility of sources: fetchers without a hash, fetchGit without a
revision, and import from derivation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.model import Call
from hlplay.audit.rules.base import ANTI_PATTERN, FileContext, Hit, Rule

if TYPE_CHECKING:
    from tree_sitter import Node

RULES = (
    Rule(
        "fetch-without-hash",
        Severity.MEDIUM,
        ANTI_PATTERN,
        "fetcher call without a content hash (`sha256`/`hash`)",
        "add `hash = \"sha256-…\";` (nix-prefetch-url, or build once with lib.fakeHash "
        "and copy the hash Nix reports)",
    ),
    Rule(
        "fetchgit-without-rev",
        Severity.MEDIUM,
        ANTI_PATTERN,
        "`builtins.fetchGit` without `rev` (follows a branch tip)",
        "pin the commit: `builtins.fetchGit { url = …; rev = \"<40-hex commit>\"; }`",
    ),
    Rule(
        "import-from-derivation",
        Severity.MEDIUM,
        ANTI_PATTERN,
        "`import`/`readFile` of a derivation's output (import from derivation)",
        "generate the Nix file once and commit it, or pass the data as attributes "
        "instead of building it during evaluation",
    ),
)

# Fetchers that need a hash to be reproducible (nixpkgs' and the builtins).
HASHED_FETCHERS = frozenset(
    {"fetchurl", "fetchzip", "fetchTarball", "fetchFromGitHub", "fetchFromGitLab",
     "fetchFromGitea", "fetchFromSourcehut", "fetchFromBitbucket", "fetchFromSavannah",
     "fetchgit", "fetchsvn", "fetchhg", "fetchpatch", "fetchpatch2", "fetchCrate", "fetchPypi"}
)
HASH_ATTRS = frozenset({"hash", "sha256", "sha512", "sha1", "outputHash", "narHash"})
FAKE_HASHES = frozenset({"fakeHash", "fakeSha256", "fakeSha512"})
GIT_FETCHERS = frozenset({"fetchGit", "builtins.fetchGit"})

# Calls that produce a derivation (reading their output forces a build).
DRV_BUILDERS = frozenset(
    {"runCommand", "runCommandLocal", "runCommandNoCC", "runCommandCC", "runCommandWith",
     "writeText", "writeTextFile", "writeTextDir", "writeScript", "writeScriptBin",
     "writeShellScript", "writeShellScriptBin", "writeShellApplication", "mkDerivation",
     "derivation", "callPackage", "symlinkJoin", "buildEnv", "linkFarm", "applyPatches",
     "srcOnly", "fetchFromGitHub", "fetchFromGitLab", "fetchgit", "fetchzip", "fetchpatch"}
)
# Calls that read a path during evaluation (the path is their last argument).
READERS = frozenset(
    {"import", "builtins.import", "scopedImport", "builtins.scopedImport", "readFile",
     "builtins.readFile", "readDir", "builtins.readDir", "lib.fileContents", "fileContents",
     "lib.importJSON", "importJSON", "lib.importTOML", "importTOML"}
)
# Attributes of pkgs that are not derivations.
PKGS_NOT_DRV = frozenset(
    {"path", "lib", "config", "system", "stdenv", "hostPlatform", "buildPlatform",
     "targetPlatform", "pkgs", "callPackage", "writeText"}
)


def check(f: FileContext) -> Iterator[Hit]:
    drv_names: set[str] | None = None  # computed on the first import/readFile
    for call in f.data.calls:
        short = call.short
        if not call.args:
            continue
        if call.name in GIT_FETCHERS:
            yield from _fetch_git(f, call)
        elif short in HASHED_FETCHERS:
            yield from _fetch_hash(f, call)
        if call.name in READERS:
            # `import ./x.nix { … }` reads its first argument; scopedImport its second
            index = 1 if short == "scopedImport" else 0
            if index >= len(call.args):
                continue
            if drv_names is None:
                drv_names = _derivation_names(f)
            what = _derivation_source(call.args[index], drv_names)
            if what:
                yield f.hit(
                    "import-from-derivation",
                    call.node,
                    f"`{call.name}` reads the output of {what}: evaluation stops to build it "
                    "(import from derivation)",
                )


def _keys(node: Node) -> set[str] | None:
    """Top-level attribute names of a literal attribute set (None when not one)."""
    node = nixast.unwrap(node)
    if node.type not in ("attrset_expression", "rec_attrset_expression"):
        return None
    keys: set[str] = set()
    for bset in node.named_children:
        if bset.type != "binding_set":
            continue
        for b in bset.named_children:
            if b.type == "binding":
                path = b.child_by_field_name("attrpath")
                if path is not None:
                    names = nixast.attr_names(path)
                    if names:
                        keys.add(names[0])
            elif b.type in ("inherit", "inherit_from"):
                attrs = b.child_by_field_name("attrs")
                if attrs is not None:
                    keys.update(nixast.attr_names(attrs))
    return keys


def _binding_value(node: Node, key: str) -> Node | None:
    node = nixast.unwrap(node)
    for bset in node.named_children:
        if bset.type != "binding_set":
            continue
        for b in bset.named_children:
            if b.type != "binding":
                continue
            path = b.child_by_field_name("attrpath")
            if path is not None and nixast.attr_names(path) == [key]:
                return b.child_by_field_name("expression")
    return None


def _is_plain_location(node: Node) -> bool:
    return nixast.unwrap(node).type in (
        "string_expression", "indented_string_expression", "uri_expression", "path_expression"
    )


def _fetch_hash(f: FileContext, call: Call) -> Iterator[Hit]:
    arg = call.args[0]
    keys = _keys(arg)
    if keys is None:
        if _is_plain_location(arg):
            yield f.hit(
                "fetch-without-hash",
                call.node,
                f"`{call.name}` of a bare URL has no hash: the content can change under you",
            )
        return
    if nixast.DYNAMIC in keys:
        return
    present = keys & HASH_ATTRS
    if not present:
        yield f.hit(
            "fetch-without-hash",
            call.node,
            f"`{call.name}` without `hash`/`sha256`: the content is not pinned",
        )
        return
    for key in sorted(present):
        value = _binding_value(arg, key)
        if value is None:
            continue
        fake = nixast.last_name(nixast.dotted_name(value)) in FAKE_HASHES
        if fake or nixast.literal(value) == "":
            yield f.hit(
                "fetch-without-hash",
                call.node,
                f"`{call.name}` has a placeholder `{key}`: the content is not pinned",
            )


def _fetch_git(f: FileContext, call: Call) -> Iterator[Hit]:
    arg = call.args[0]
    keys = _keys(arg)
    if keys is None:
        if _is_plain_location(arg):
            yield f.hit(
                "fetchgit-without-rev",
                call.node,
                f"`{call.name}` of a bare URL follows the default branch: no `rev` pins it",
            )
        return
    if nixast.DYNAMIC in keys or "rev" in keys:
        return
    yield f.hit(
        "fetchgit-without-rev",
        call.node,
        f"`{call.name}` without `rev` fetches whatever the branch points to at evaluation time",
    )


def _derivation_names(f: FileContext) -> set[str]:
    names: set[str] = set()
    for b in f.data.bindings:
        if len(b.path) == 1 and _builds(b.value):
            names.add(b.path[0])
    return names


def _builds(node: Node) -> bool:
    node = nixast.unwrap(node)
    if node.type != "apply_expression":
        return False
    head, _ = nixast.flatten_apply(node)
    name = nixast.dotted_name(head)
    return nixast.last_name(name) in DRV_BUILDERS and not name.startswith("builtins.")


def _derivation_source(node: Node, drv_names: set[str], depth: int = 0) -> str:
    """A short description of the derivation ``node`` reads from, or ``""``."""
    if depth > 32:
        return ""
    node = nixast.unwrap(node)
    kind = node.type
    if kind == "apply_expression":
        if _builds(node):
            head, _ = nixast.flatten_apply(node)
            return f"`{nixast.dotted_name(head)} …`"
        return ""
    if kind == "variable_expression":
        name = nixast.text(node)
        return f"`{name}` (a derivation)" if name in drv_names else ""
    if kind == "select_expression":
        dotted = nixast.dotted_name(node)
        parts = dotted.split(".")
        if len(parts) >= 2 and parts[0] in drv_names:
            return f"`{dotted}` (a derivation)"
        if len(parts) >= 2 and parts[0] == "pkgs" and parts[1] not in PKGS_NOT_DRV:
            return f"package `{dotted}`"
        return ""
    if kind in ("string_expression", "indented_string_expression"):
        first = next((c for c in node.named_children if c.type != "comment"), None)
        if first is not None and first.type == "interpolation":
            inner = first.child_by_field_name("expression") or (
                first.named_children[0] if first.named_children else None
            )
            if inner is not None:
                return _derivation_source(inner, drv_names, depth + 1)
        return ""
    if kind == "binary_expression":
        left = node.child_by_field_name("left")
        op = node.child_by_field_name("operator")
        if left is not None and op is not None and op.type == "+":
            return _derivation_source(left, drv_names, depth + 1)
    return ""
