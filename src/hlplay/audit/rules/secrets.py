"""Secrets in the repository: plaintext passwords and tokens, world-readable
secret files."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.model import Binding
from hlplay.audit.rules.base import SECURITY, FileContext, Hit, Rule, show_path, words

RULES = (
    Rule(
        "plaintext-secret",
        Severity.HIGH,
        SECURITY,
        "a password, secret or token written as a string (`password = \"…\"`)",
        "use hashedPassword (mkpasswd -m sha-512) for users, and a *File option with "
        "sops-nix or agenix for service secrets",
    ),
    Rule(
        "token-in-source",
        Severity.CRITICAL,
        SECURITY,
        "a credential with a known format (GitHub, GitLab, Slack, AWS, private key) in a file",
        "revoke the credential now, then load it from a secret manager (sops-nix, agenix) "
        "at run time",
    ),
    Rule(
        "world-readable-secret",
        Severity.HIGH,
        SECURITY,
        "a secret file deployed with a world-readable mode (`mode = \"0644\"`)",
        "use mode \"0400\" or \"0440\" with the owner and group of the service that reads it",
    ),
)

_SECRET_LAST = frozenset(
    {"password", "passwd", "passphrase", "secret", "token", "apikey", "secretkey",
     "privatekey", "accesskey"}
)
_KEY_QUALIFIERS = frozenset({"api", "secret", "private", "access", "auth", "encryption"})
_NOT_SECRET = frozenset({"hashed", "hash"})

_TOKENS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("GitHub token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("GitLab token", re.compile(rb"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("Slack token", re.compile(rb"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("AWS access key", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
)

_SECRET_WORDS = frozenset(
    {"secret", "secrets", "key", "keys", "password", "passwords", "passwd", "token", "tokens",
     "credential", "credentials", "pem", "privkey", "apikey", "htpasswd", "keytab"}
)
_MODE = re.compile(r"^0?[0-7]{3}$")
_CONTENT_ATTRS = ("source", "text", "file", "path", "target", "name")


def check(f: FileContext) -> Iterator[Hit]:
    for b in f.data.bindings:
        if not b.path:
            continue
        last = b.path[-1]
        if last == "mode":
            yield from _mode(f, b)
        elif _is_secret_name(last):
            value = nixast.literal(b.value)
            if isinstance(value, str) and _looks_plaintext(value):
                yield f.hit(
                    "plaintext-secret",
                    b.node,
                    f"{show_path(b.path)} is a plaintext secret in the repository "
                    "(anyone who can read it, and the world-readable Nix store, has it)",
                )
    yield from _tokens(f)


def _is_secret_name(name: str) -> bool:
    parts = words(name)
    if not parts or _NOT_SECRET & set(parts):
        return False
    last = parts[-1]
    if last in _SECRET_LAST:
        return True
    return last == "key" and len(parts) >= 2 and parts[-2] in _KEY_QUALIFIERS


def _looks_plaintext(value: str) -> bool:
    # file paths, $ENV/$__file{…} references and crypt(3) hashes are not secrets themselves
    v = value.strip()
    return bool(v) and not v.startswith(("/", "$", "@"))


def _tokens(f: FileContext) -> Iterator[Hit]:
    source = f.source
    for kind, pattern in _TOKENS:
        for m in pattern.finditer(source):
            shown = m.group(0)[:4].decode("ascii", "replace")
            yield f.hit_at(
                "token-in-source",
                m.start(),
                f"{kind} ({shown}…) in the repository: treat it as leaked",
            )


def _mode(f: FileContext, b: Binding) -> Iterator[Hit]:
    value = nixast.literal(b.value)
    if not isinstance(value, str) or not _MODE.match(value):
        return
    if not int(value[-1]) & 4:
        return
    owner = b.path[:-1]
    if not _secretish(f, b):
        return
    yield f.hit(
        "world-readable-secret",
        b.node,
        f"{show_path(owner)} looks like a secret but its mode {value} lets every user read it",
    )


def _secretish(f: FileContext, b: Binding) -> bool:
    owner = b.path[:-1]
    for part in owner:
        if _SECRET_WORDS & set(words(part)):
            return True
    for sib in f.siblings(owner):
        if sib.path[-1] not in _CONTENT_ATTRS:
            continue
        node = nixast.unwrap(sib.value)
        if node.type in ("path_expression", "hpath_expression"):
            content = nixast.text(node)
        else:
            lit = nixast.literal(node)
            content = lit if isinstance(lit, str) else ""
        if _SECRET_WORDS & set(words(content)):
            return True
    return False
