"""Anti-patterns of scope and purity: module-wide ``with``, ``rec`` sets, ``<…>`` paths."""

from __future__ import annotations

from collections.abc import Iterator

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.rules.base import ANTI_PATTERN, FileContext, Hit, Rule

RULES = (
    Rule(
        "top-level-with",
        Severity.LOW,
        ANTI_PATTERN,
        "`with` at module scope (`with pkgs;` over the whole file)",
        "use `with` on small expressions (`with pkgs; [ … ]`), or `inherit (pkgs) a b;` in a let",
    ),
    Rule(
        "rec-attrset",
        Severity.INFO,
        ANTI_PATTERN,
        "`rec { … }` attribute set",
        "use `let … in { … }`, or refer to the set by name, instead of `rec`",
    ),
    Rule(
        "lookup-path",
        Severity.MEDIUM,
        ANTI_PATTERN,
        "`<nixpkgs>`-style lookup path (depends on NIX_PATH)",
        "take nixpkgs from a flake input or a pinned fetchTarball with a hash",
    ),
)


def check(f: FileContext) -> Iterator[Hit]:
    for node in f.data.module_withs:
        env = node.child_by_field_name("environment")
        what = nixast.text(env) if env is not None else "…"
        if len(what) > 40:
            what = what[:40] + "…"
        yield f.hit(
            "top-level-with",
            node,
            f"`with {what};` at module scope brings every attribute of {what} into scope "
            "for the whole file",
        )
    for node in f.data.recs:
        yield f.hit(
            "rec-attrset", node, "`rec` attribute set: its bindings can refer to each other "
            "and shadow outer names"
        )
    for node in f.data.lookup_paths:
        yield f.hit(
            "lookup-path",
            node,
            f"lookup path {nixast.text(node)} depends on NIX_PATH, not on the repository",
        )
