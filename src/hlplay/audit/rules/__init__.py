"""The rule registry: every rule of every family, by id.

A family is a module with ``RULES`` (their metadata) and ``check(file)``
(yielding hits for any of them). Adding a family = adding a module here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from hlplay.audit.findings import Severity
from hlplay.audit.rules import (
    antipatterns,
    fetchers,
    network,
    nixdaemon,
    overrides,
    secrets,
    ssh,
)
from hlplay.audit.rules.base import META, FileContext, Hit, Rule

PARSE_ERROR = Rule(
    "parse-error",
    Severity.HIGH,
    META,
    "a file that is not valid Nix (or not UTF-8); the other rules cannot look at it",
    "fix the syntax error at the position shown (`nix-instantiate --parse FILE` agrees)",
)
BAD_SUPPRESSION = Rule(
    "bad-suppression",
    Severity.LOW,
    META,
    "an `# hlplay: ignore[…]` comment naming a rule that does not exist",
    "use a rule id from `hlplay audit --list-rules`",
)

Check = Callable[[FileContext], Iterator[Hit]]

FAMILIES = (antipatterns, fetchers, overrides, ssh, network, secrets, nixdaemon)
CHECKS: tuple[Check, ...] = tuple(fam.check for fam in FAMILIES)


def _all_rules() -> dict[str, Rule]:
    rules: list[Rule] = [PARSE_ERROR, BAD_SUPPRESSION]
    for fam in FAMILIES:
        rules.extend(fam.RULES)
    return {r.id: r for r in rules}


RULES: dict[str, Rule] = _all_rules()


def run_checks(f: FileContext, checks: Iterable[Check] = CHECKS) -> Iterator[Hit]:
    for check in checks:
        yield from check(f)
