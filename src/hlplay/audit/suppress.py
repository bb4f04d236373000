"""Suppression comments.

``# hlplay: ignore[RULE]`` or ``# hlplay: ignore[RULE1,RULE2]`` silences those
rules on its own line and on the line below (so it can sit above a binding or
trail it); ``# hlplay: ignore-file[RULE]`` silences them in the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DIRECTIVE = re.compile(rb"#[ \t]*hlplay:[ \t]*(ignore-file|ignore)[ \t]*\[([^\]\n]*)\]")


@dataclass(frozen=True)
class Directive:
    rule: str
    byte: int  # where the rule's name starts, for reporting unknown names
    whole_file: bool
    line: int  # 1-based


@dataclass
class Suppressions:
    file_rules: set[str] = field(default_factory=set)
    by_line: dict[int, set[str]] = field(default_factory=dict)
    directives: list[Directive] = field(default_factory=list)

    def covers(self, rule: str, line: int) -> bool:
        if rule in self.file_rules:
            return True
        rules = self.by_line.get(line)
        return rules is not None and rule in rules


def scan(source: bytes) -> Suppressions:
    out = Suppressions()
    if b"hlplay:" not in source:
        return out
    for m in _DIRECTIVE.finditer(source):
        whole = m.group(1) == b"ignore-file"
        line = source.count(b"\n", 0, m.start()) + 1
        start = m.start(2)
        for raw in m.group(2).split(b","):
            offset = len(raw) - len(raw.lstrip())
            rule = raw.strip().decode("utf-8", "replace")
            if rule:
                out.directives.append(Directive(rule, start + offset, whole, line))
            start += len(raw) + 1
    for d in out.directives:
        if d.whole_file:
            out.file_rules.add(d.rule)
        else:
            out.by_line.setdefault(d.line, set()).add(d.rule)
            out.by_line.setdefault(d.line + 1, set()).add(d.rule)
    return out
