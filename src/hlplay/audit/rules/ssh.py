"""OpenSSH server settings that let attackers in."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hlplay.audit import nixast
from hlplay.audit.findings import Severity
from hlplay.audit.rules.base import LINE_START, SECURITY, FileContext, Hit, Rule, show_path

RULES = (
    Rule(
        "ssh-root-login",
        Severity.HIGH,
        SECURITY,
        "`PermitRootLogin = \"yes\"` (root may log in with a password)",
        "use \"prohibit-password\" (keys only) or \"no\", and log in as a user with sudo",
    ),
    Rule(
        "ssh-password-auth",
        Severity.HIGH,
        SECURITY,
        "SSH password authentication enabled",
        "set services.openssh.settings.PasswordAuthentication = false and use keys",
    ),
)

_ROOT_LOGIN = re.compile(rb"(?im)" + LINE_START + rb"(PermitRootLogin[ \t]+yes)\b")
_PASSWORD_AUTH = re.compile(rb"(?im)" + LINE_START + rb"(PasswordAuthentication[ \t]+yes)\b")


def check(f: FileContext) -> Iterator[Hit]:
    for b in f.data.bindings:
        name = b.path[-1].lower() if b.path else ""
        if name == "permitrootlogin":
            if nixast.literal(b.value) in ("yes", True):
                yield f.hit(
                    "ssh-root-login", b.node, f"{show_path(b.path)} = \"yes\" lets root log in "
                    "over SSH with a password",
                )
        elif name == "passwordauthentication":
            if nixast.literal(b.value) in (True, "yes"):
                yield f.hit(
                    "ssh-password-auth", b.node, f"{show_path(b.path)} enables password logins "
                    "over SSH (open to brute force)",
                )
        elif name == "extraconfig" and "openssh" in b.path:
            for byte, _ in f.string_lines(b.value, _ROOT_LOGIN):
                yield f.hit_at(
                    "ssh-root-login", byte, "`PermitRootLogin yes` in sshd's extraConfig"
                )
            for byte, _ in f.string_lines(b.value, _PASSWORD_AUTH):
                yield f.hit_at(
                    "ssh-password-auth", byte, "`PasswordAuthentication yes` in sshd's extraConfig"
                )
