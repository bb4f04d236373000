"""Module-system overrides: ``mkForce`` used as a hammer."""

from __future__ import annotations

from collections.abc import Iterator

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.model import Path
from hlplay.audit.rules.base import ANTI_PATTERN, FileContext, Hit, Rule, show_path

RULES = (
    Rule(
        "mkforce-pileup",
        Severity.LOW,
        ANTI_PATTERN,
        "more `mkForce` in one file than the limit (default 5)",
        "set values at the right priority (mkDefault in shared modules, plain values in "
        "hosts) instead of forcing them",
    ),
    Rule(
        "mkforce-duplicate",
        Severity.MEDIUM,
        ANTI_PATTERN,
        "the same option forced twice in one file",
        "keep one `mkForce` per option; two forced definitions conflict or merge unexpectedly",
    ),
)


def check(f: FileContext) -> Iterator[Hit]:
    forced = [c for c in f.data.calls if c.short == "mkForce"]
    if len(forced) > f.mkforce_limit:
        extra = forced[f.mkforce_limit]
        yield f.hit(
            "mkforce-pileup",
            extra.node,
            f"{len(forced)} uses of mkForce in this file (more than {f.mkforce_limit}): "
            "priorities are being fought, not designed",
        )
    first: dict[Path, int] = {}
    for b in f.data.bindings:
        if nixast.DYNAMIC in b.path or b.in_let:
            continue
        value = b.value
        while value.type == "parenthesized_expression":
            inner = value.child_by_field_name("expression")
            if inner is None:
                break
            value = inner
        if value.type != "apply_expression":
            continue
        head, _ = nixast.flatten_apply(value)
        if nixast.last_name(nixast.dotted_name(head)) != "mkForce":
            continue
        if b.path in first:
            yield f.hit(
                "mkforce-duplicate",
                b.node,
                f"{show_path(b.path)} is forced again (first mkForce on line {first[b.path]})",
            )
        else:
            first[b.path] = b.node.start_point[0] + 1
