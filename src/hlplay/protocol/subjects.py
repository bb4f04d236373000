"""NATS subjects: expanding homelab-deploy's templates for a host, a tier, a role.

Templates use ``<tier>``, ``<hostname>`` and ``<role>`` (see
:class:`hlplay.inventory.model.SubjectTemplates`). Listeners expand them once at
start-up; ``nats config`` expands them with ``*`` to write permissions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from hlplay.subjectrules import ANY_PLACEHOLDER_RE as ANY_PLACEHOLDER_RE
from hlplay.subjectrules import FORBIDDEN_PLACEHOLDERS as FORBIDDEN_PLACEHOLDERS
from hlplay.subjectrules import PLACEHOLDERS as PLACEHOLDERS
from hlplay.subjectrules import REQUIRED_PLACEHOLDERS as REQUIRED_PLACEHOLDERS
from hlplay.subjectrules import template_problem as template_problem

PLACEHOLDER_RE = re.compile(r"<([a-z]+)>")
SUBJECT_RE = re.compile(r"^[A-Za-z0-9_*>-]+(\.[A-Za-z0-9_*>-]+)*$")


class TemplateSet(Protocol):
    """One fleet's templates, read only; the inventory's ``SubjectTemplates`` is one.

    Structural, so the protocol needs nothing from the inventory above it.
    """

    @property
    def host(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def discover(self) -> str: ...
    @property
    def facts(self) -> str: ...
    @property
    def confirm(self) -> str: ...


class SubjectError(ValueError):
    """A template that cannot expand to a valid subject."""


def expand(template: str, *, tier: str = "", hostname: str = "", role: str = "") -> str:
    """Replace the placeholders of ``template``; raise :class:`SubjectError` if invalid."""
    values = {"tier": tier, "hostname": hostname, "role": role}

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SubjectError(
                f"unknown placeholder <{name}> in subject template {template!r}; "
                f"expected {', '.join('<' + p + '>' for p in PLACEHOLDERS)}"
            )
        value = values[name]
        if not value:
            raise SubjectError(f"subject template {template!r} needs a value for <{name}>")
        return value

    subject = PLACEHOLDER_RE.sub(repl, template)
    if not SUBJECT_RE.fullmatch(subject):
        raise SubjectError(
            f"subject template {template!r} expands to an invalid subject {subject!r}"
        )
    return subject


def uses(template: str, placeholder: str) -> bool:
    return f"<{placeholder}>" in template


@dataclass(frozen=True)
class ListenerSubjects:
    """Every subject one listener subscribes to."""

    deploy: tuple[str, ...]  # host, tier and one per role, in that order, no duplicates
    discover: str
    facts: str
    confirm: str

    def all(self) -> tuple[str, ...]:
        return (*self.deploy, self.discover, self.facts, self.confirm)


def listener_subjects(
    templates: TemplateSet, *, hostname: str, tier: str, roles: tuple[str, ...] = ()
) -> ListenerSubjects:
    deploy = [
        expand(templates.host, tier=tier, hostname=hostname),
        expand(templates.tier, tier=tier, hostname=hostname),
    ]
    for role in roles:
        deploy.append(expand(templates.role, tier=tier, hostname=hostname, role=role))
    return ListenerSubjects(
        deploy=tuple(dict.fromkeys(deploy)),
        discover=expand(templates.discover, tier=tier, hostname=hostname),
        facts=expand(templates.facts, tier=tier, hostname=hostname),
        confirm=expand(templates.confirm, tier=tier, hostname=hostname),
    )


def host_subjects(templates: TemplateSet, *, hostname: str, tier: str) -> dict[str, str]:
    """The subjects a controller uses to reach one host directly."""
    return {
        "deploy": expand(templates.host, tier=tier, hostname=hostname),
        "facts": expand(templates.facts, tier=tier, hostname=hostname),
        "confirm": expand(templates.confirm, tier=tier, hostname=hostname),
    }


def tier_patterns(templates: TemplateSet, tier: str) -> list[str]:
    """Wildcard subjects covering every deploy, facts and confirm subject of ``tier``.

    Host and role names become ``*``; patterns another pattern already covers
    are left out. With the default templates this gives ``deploy.<tier>.*``,
    ``deploy.<tier>.role.*``, ``hlplay.facts.<tier>.*`` and ``hlplay.confirm.<tier>.*``.
    """
    out: list[str] = []
    for template in (
        templates.host,
        templates.tier,
        templates.role,
        templates.facts,
        templates.confirm,
    ):
        pattern = expand(template, tier=tier, hostname="*", role="*")
        if pattern not in out:
            out.append(pattern)
    return [p for p in out if not any(q != p and covers(q, p) for q in out)]


def covers(pattern: str, subject: str) -> bool:
    """True if the NATS wildcard ``pattern`` matches every subject ``subject`` matches."""
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return i < len(s_tokens)
        if i >= len(s_tokens):
            return False
        s = s_tokens[i]
        if p == "*":
            if s == ">":
                return False
            continue
        if p != s:
            return False
    return len(p_tokens) == len(s_tokens)


def matches(pattern: str, subject: str) -> bool:
    """True if the concrete ``subject`` matches the wildcard ``pattern``."""
    return covers(pattern, subject)
