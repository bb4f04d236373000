"""The inventory's ``hlplay:`` section, and the typed values it and hosts share.

Settings may be spread over several inventory files; each setting may be given
once. Relative paths resolve against the directory of the file that writes
them, so an inventory works from any working directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hlplay.errors import InventoryError, Location, did_you_mean
from hlplay.inventory.model import (
    PROTOCOLS,
    TRANSPORTS,
    HostDefaults,
    MonitoringSettings,
    NatsSettings,
    NixSettings,
    Settings,
    SshSettings,
    SubjectTemplates,
)
from hlplay.inventory.names import check_token, type_name
from hlplay.subjectrules import ANY_PLACEHOLDER_RE, is_literal_subject, template_problem
from hlplay.yamlsrc import YList, YMap

URL_RE = re.compile(r"^(nats|tls|ws|wss)://[^\s/]+.*$")
HTTP_RE = re.compile(r"^https?://\S+$")
FLAKE_REF_RE = re.compile(r"^[a-z][a-z0-9+.-]*:")
USER_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$")

SSH_SCHEMA: dict[str, Any] = {
    "user": "user",
    "port": "port",
    "key": "path",
    "known_hosts": "path",
    "host_key_checking": "bool",
    "become": "bool",
    "become_user": "user",
    "connect_timeout": "seconds",
}

SUBJECT_KEYS = ("host", "tier", "role", "discover", "facts", "confirm")

SCHEMA: dict[str, Any] = {
    "nats": {
        "url": "nats_url",
        "urls": "nats_urls",
        "credentials": "path",
        "subjects": {key: "subject" for key in SUBJECT_KEYS},
        "timeout": "seconds",
        "connect_timeout": "seconds",
        "reply_prefix": "reply_prefix",
        "keys": "path",
        "liveness": "seconds",
    },
    "nix": {"flake": "flake", "toplevel_attr": "str", "profile": "str"},
    "monitoring": {"prometheus_url": "http_url", "alertmanager_url": "http_url"},
    "defaults": {"tier": "tier", "transport": "transport", "ssh": SSH_SCHEMA},
}


def resolve_path(value: str, base: Path | str) -> str:
    """``~`` expanded; relative paths made absolute against ``base``."""
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        path = os.path.abspath(os.path.join(base, path))
    return path


def _bool(value: Any, what: str, loc: Location) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "true",
        "yes",
        "on",
        "1",
        "false",
        "no",
        "off",
        "0",
    ):
        return value.lower() in ("true", "yes", "on", "1")
    raise InventoryError(f"{what} must be true or false, got {type_name(value)}", loc)


def _str(value: Any, what: str, loc: Location) -> str:
    if not isinstance(value, str) or not value:
        raise InventoryError(f"{what} must be a non-empty string, got {type_name(value)}", loc)
    if "{{" in value or "{%" in value:
        raise InventoryError(f"{what} cannot be a template here: {value!r}", loc)
    return value


def coerce(kind: str, value: Any, what: str, loc: Location, base: Path | str) -> Any:
    """Check and convert one typed value; ``what`` names it in errors."""
    if kind == "bool":
        return _bool(value, what, loc)
    if kind == "port":
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise InventoryError(f"{what} must be a port number (1-65535), got {value!r}", loc)
        return value
    if kind == "seconds":
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InventoryError(f"{what} must be a positive number of seconds, got {value!r}", loc)
        return float(value)
    if kind == "tier":
        return check_token("tier", value, loc)
    if kind in ("transport", "protocol"):
        choices = TRANSPORTS if kind == "transport" else PROTOCOLS
        text = _str(value, what, loc)
        if text not in choices:
            raise InventoryError(
                f"{what} must be one of {', '.join(choices)}, got '{text}'"
                + did_you_mean(text, choices),
                loc,
            )
        return text
    text = _str(value, what, loc)
    if kind == "str":
        return text
    if kind == "path":
        return resolve_path(text, base)
    if kind == "user":
        if not USER_RE.fullmatch(text):
            raise InventoryError(f"{what}: invalid user name '{text}'", loc)
        return text
    if kind == "address":
        if not ADDRESS_RE.fullmatch(text):
            raise InventoryError(
                f"{what}: invalid address '{text}' (a host name or IP address)", loc
            )
        return text
    if kind == "flake":
        return text if FLAKE_REF_RE.match(text) else resolve_path(text, base)
    if kind == "nats_url":
        problem = nats_url_problem(text)
        if problem is not None:
            raise InventoryError(f"{what}: {problem}", loc)
        return text
    if kind == "http_url":
        if not HTTP_RE.fullmatch(text):
            raise InventoryError(f"{what}: invalid URL '{text}' (expected http(s)://…)", loc)
        return text
    if kind == "subject":
        return text
    if kind == "reply_prefix":
        if not is_literal_subject(text):
            raise InventoryError(
                f"{what}: '{text}' is not a NATS subject prefix "
                "(dot-separated words, no wildcards), e.g. deploy.responses",
                loc,
            )
        return text
    raise AssertionError(kind)  # pragma: no cover


def nats_url_problem(url: str) -> str | None:
    """Why ``url`` is not a NATS server URL the client can use, or None."""
    bad = f"invalid NATS URL '{url}' (expected nats://host:port)"
    if not URL_RE.fullmatch(url):
        return bad
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0-65535
    except ValueError:
        return bad
    if not parts.hostname or port == 0:
        return bad
    return None


@dataclass
@dataclass
class _Leaf:
    value: Any
    loc: Location


class SettingsCollector:
    """Gathers ``hlplay:`` sections from every inventory file, then builds :class:`Settings`."""

    def __init__(self) -> None:
        self.leaves: dict[str, _Leaf] = {}

    def add(self, section: Any, loc: Location, base: Path) -> None:
        self._walk(section, SCHEMA, "hlplay", loc, base)

    def _walk(
        self, node: Any, schema: dict[str, Any], path: str, loc: Location, base: Path
    ) -> None:
        if node is None:
            return
        if not isinstance(node, YMap):
            raise InventoryError(f"'{path}' must be a mapping, got {type_name(node)}", loc)
        for key, value in node.items():
            kloc = node.loc_of(key)
            if key not in schema:
                raise InventoryError(
                    f"unknown key '{key}' in '{path}'" + did_you_mean(key, schema), kloc
                )
            sub = schema[key]
            dotted = f"{path}.{key}"
            if isinstance(sub, dict):
                self._walk(value, sub, dotted, kloc, base)
                continue
            if sub == "nats_urls":
                urls = value if isinstance(value, YList) else None
                if urls is None or not urls:
                    raise InventoryError(
                        f"'{dotted}' must be a list of NATS URLs, got {type_name(value)}", kloc
                    )
                typed: Any = tuple(
                    coerce("nats_url", u, dotted, urls.loc_of(i), base) for i, u in enumerate(urls)
                )
            else:
                typed = coerce(sub, value, f"'{dotted}'", kloc, base)
            canon = "hlplay.nats.urls" if dotted == "hlplay.nats.url" else dotted
            if sub == "nats_url":
                typed = (typed,)
            previous = self.leaves.get(canon)
            if previous is not None:
                raise InventoryError(f"'{canon}' is already set at {previous.loc}", kloc)
            self.leaves[canon] = _Leaf(typed, kloc)

    def _get(self, key: str, default: Any) -> Any:
        leaf = self.leaves.get(key)
        return default if leaf is None else leaf.value

    def build(self) -> Settings:
        base = Settings()
        subjects_kwargs = {
            k: self.leaves[f"hlplay.nats.subjects.{k}"].value
            for k in SUBJECT_KEYS
            if f"hlplay.nats.subjects.{k}" in self.leaves
        }
        subjects = replace(base.nats.subjects, **subjects_kwargs)
        self._check_subjects(subjects)
        nats = NatsSettings(
            urls=self._get("hlplay.nats.urls", base.nats.urls),
            credentials=self._get("hlplay.nats.credentials", base.nats.credentials),
            subjects=subjects,
            timeout=self._get("hlplay.nats.timeout", base.nats.timeout),
            connect_timeout=self._get("hlplay.nats.connect_timeout", base.nats.connect_timeout),
            reply_prefix=self._get("hlplay.nats.reply_prefix", base.nats.reply_prefix),
            keys=self._get("hlplay.nats.keys", base.nats.keys),
            liveness=self._get("hlplay.nats.liveness", base.nats.liveness),
        )
        nix = NixSettings(
            flake=self._get("hlplay.nix.flake", base.nix.flake),
            toplevel_attr=self._get("hlplay.nix.toplevel_attr", base.nix.toplevel_attr),
            profile=self._get("hlplay.nix.profile", base.nix.profile),
        )
        monitoring = MonitoringSettings(
            prometheus_url=self._get("hlplay.monitoring.prometheus_url", None),
            alertmanager_url=self._get("hlplay.monitoring.alertmanager_url", None),
        )
        ssh_kwargs = {
            k: self.leaves[f"hlplay.defaults.ssh.{k}"].value
            for k in SSH_SCHEMA
            if f"hlplay.defaults.ssh.{k}" in self.leaves
        }
        defaults = HostDefaults(
            tier=self._get("hlplay.defaults.tier", base.defaults.tier),
            transport=self._get("hlplay.defaults.transport", None),
            ssh=SshSettings(**ssh_kwargs),
        )
        return Settings(nats=nats, nix=nix, monitoring=monitoring, defaults=defaults)

    def _check_subjects(self, subjects: SubjectTemplates) -> None:
        for key in SUBJECT_KEYS:
            template: str = getattr(subjects, key)
            leaf = self.leaves.get(f"hlplay.nats.subjects.{key}")
            loc = leaf.loc if leaf else Location("<defaults>")
            what = f"subject template '{key}' ({template})"
            problem = template_problem(key, template)
            if problem is not None:
                sep = ":" if problem.startswith("unknown") else ""
                raise InventoryError(f"{what}{sep} {problem}", loc)
            sample = ANY_PLACEHOLDER_RE.sub("x", template)
            if not is_literal_subject(sample):
                raise InventoryError(
                    f"{what}: not a valid NATS subject (dot-separated words, no wildcards)", loc
                )
