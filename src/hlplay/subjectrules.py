"""What a NATS subject token, a subject and a subject template may be.

Host, tier and role names end up inside subjects, so the inventory checks them
when it loads; the protocol checks the same on the wire and expands the
templates. Both take the rules from here, below both, so neither imports the
other. Nothing from hlplay is imported here.
"""

from __future__ import annotations

import re

# A NATS subject token: no whitespace, dots or wildcards.
SUBJECT_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# A subject to publish to: dot-separated tokens, no wildcards, no empty tokens.
LITERAL_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")

PLACEHOLDERS = ("tier", "hostname", "role")
ANY_PLACEHOLDER_RE = re.compile(r"<([^<>]*)>")

# Which placeholders each template must and must not use: a host subject
# without <hostname> would reach every host of the tier, a tier subject with
# <hostname> would reach none of the others.
REQUIRED_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "host": ("hostname",),
    "tier": ("tier",),
    "role": ("role",),
    "discover": (),
    "facts": ("hostname",),
    "confirm": ("hostname",),
}
FORBIDDEN_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "host": ("role",),
    "tier": ("hostname", "role"),
    "role": ("hostname",),
    "discover": ("hostname", "role"),
    "facts": ("role",),
    "confirm": ("role",),
}


def is_subject_token(name: str) -> bool:
    return bool(SUBJECT_TOKEN_RE.fullmatch(name))


def is_literal_subject(text: str) -> bool:
    """True for dot-separated tokens without wildcards (``deploy.responses``)."""
    return bool(LITERAL_SUBJECT_RE.fullmatch(text))


def template_problem(key: str, template: str) -> str | None:
    """What is wrong with the ``key`` template (``host``, ``tier`` …), or None."""
    used = ANY_PLACEHOLDER_RE.findall(template)
    for name in used:
        if name not in PLACEHOLDERS:
            return f"unknown placeholder <{name}>; use <tier>, <hostname>, <role>"
    for name in REQUIRED_PLACEHOLDERS[key]:
        if name not in used:
            return f"must contain <{name}>"
    for name in FORBIDDEN_PLACEHOLDERS[key]:
        if name in used:
            return f"cannot contain <{name}>"
    return None
