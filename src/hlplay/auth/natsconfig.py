"""The nats-server authorization config for a fleet, from its inventory.

Users (all NKey):

* one **listener** per listener host: may subscribe to its own subjects only
  (host, tier, each of its roles, discovery, facts, confirmation) and publish
  only to reply subjects (``_INBOX.>``, hlplay's default inbox, and
  ``deploy.responses.>``, homelab-deploy's and ``hlplay.nats.reply_prefix:
  deploy.responses``). Not
  ``allow_responses``: it would let a requester pick any subject as the reply
  subject — ``deploy.prod.all`` — and have a listener publish there;
* one **tier deployer** per tier (``deployer-<tier>``) with a key: may publish
  deploy, facts and confirmation subjects of that tier and discovery, and
  subscribe to reply inboxes;
* the **admin** deployer: the same for every tier of the inventory.

Public keys come from, in order: ``keys`` given by the caller, a host's
``nkey`` variable (listeners), ``<keys_dir>/<name>.pub``, ``<keys_dir>/<name>.seed``.

A key rotated by ``hlplay keys rotate`` (its name's ``<keys_dir>/<name>.retired``)
gets a user of its own with the same permissions as its successor until its
grace period ends, so that a listener or deployer still holding the old seed
can connect while it is being given the new one. Not for a name the caller
gives in ``keys``: those are all the keys it has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from hlplay.auth.keys import (
    KeyFileError,
    find_public_key,
    is_user_public_key,
    retired_keys,
    utc_text,
)
from hlplay.errors import HlplayError
from hlplay.inventory.model import Host, Inventory, SubjectTemplates
from hlplay.protocol.subjects import expand, listener_subjects, tier_patterns

ADMIN = "admin"
DEPLOYER_PREFIX = "deployer-"
REPLY_SUBJECTS = ("_INBOX.>", "deploy.responses.>")


class NatsConfigError(HlplayError):
    """The authorization config cannot be generated."""


@dataclass(frozen=True)
class NatsUser:
    name: str
    kind: str  # "listener" | "deployer" | "admin"
    nkey: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    comment: str = ""
    #: For a rotated key still in its grace period: when it stops being let in.
    retired_until: float | None = None


def tiers_of(inventory: Inventory) -> list[str]:
    return list(dict.fromkeys(h.tier for h in inventory.hosts.values()))


def reply_space(subject: str) -> str | None:
    """The reply subject pattern ``subject`` falls under, or None."""
    for pattern in REPLY_SUBJECTS:
        if subject.startswith(pattern[:-1]):
            return pattern
    return None


def listener_user(host: Host, nkey: str, templates: SubjectTemplates) -> NatsUser:
    subjects = listener_subjects(templates, hostname=host.name, tier=host.tier, roles=host.roles)
    for subject in subjects.all():
        pattern = reply_space(subject)
        if pattern is not None:
            # Every listener may publish there: replies would reach it as requests.
            where = f"{host.location}: " if host.location else ""
            raise NatsConfigError(
                f"{where}host {host.name}: its listener subject {subject} lies among the "
                f"reply subjects ({pattern}); choose another tier or subject template"
            )
    roles = ", ".join(host.roles) or "none"
    return NatsUser(
        name=host.name,
        kind="listener",
        nkey=nkey,
        publish=REPLY_SUBJECTS,
        subscribe=subjects.all(),
        comment=f"listener {host.name} (tier {host.tier}, roles {roles})",
    )


def deployer_user(
    name: str, nkey: str, tiers: Sequence[str], templates: SubjectTemplates, kind: str
) -> NatsUser:
    publish: list[str] = []
    for tier in tiers:
        publish += tier_patterns(templates, tier)
    publish.append(expand(templates.discover, tier="_", hostname="_"))
    return NatsUser(
        name=name,
        kind=kind,
        nkey=nkey,
        publish=tuple(dict.fromkeys(publish)),
        subscribe=REPLY_SUBJECTS,
        comment=f"{kind} {name} (tiers {', '.join(tiers)})",
    )


@dataclass
class _Keys:
    given: Mapping[str, str]
    keys_dir: str | None
    now: float | None = None
    missing: list[str] = field(default_factory=list)

    def retired(self, user: NatsUser) -> list[NatsUser]:
        """``user`` again for each of its retired keys still in grace."""
        if user.name in self.given or not self.keys_dir:
            return []
        try:
            records = retired_keys(user.name, self.keys_dir, now=self.now)
        except KeyFileError as exc:
            raise NatsConfigError(str(exc)) from None
        return [
            replace(
                user,
                nkey=r.key,
                retired_until=r.until,
                comment=f"{user.comment}; retired key, let in until {utc_text(r.until)}",
            )
            for r in records
            if r.key != user.nkey
        ]

    def lookup(self, name: str, host: Host | None = None, *, required: bool) -> str | None:
        value = self.given.get(name)
        if value is None and host is not None and "nkey" in host.vars:
            value = str(host.vars["nkey"])
            if not is_user_public_key(value):
                where = f"{host.location}: " if host.location else ""
                raise NatsConfigError(
                    f"{where}host {host.name}: 'nkey' is not an NKey user public key "
                    "(U followed by 55 characters)"
                )
        if value is None and self.keys_dir:
            value = find_public_key(name, self.keys_dir)
        if value is None and required:
            self.missing.append(name)
        return value


def plan_users(
    inventory: Inventory,
    *,
    keys_dir: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str] | None = None,
    now: float | None = None,
) -> list[NatsUser]:
    """The users of the config; a retired key's user follows its successor's."""
    templates = inventory.settings.nats.subjects
    lookup = _Keys(dict(keys or {}), str(keys_dir) if keys_dir else None, now)
    users: list[NatsUser] = []
    for host in inventory.hosts.values():
        if not host.has_listener:
            continue
        nkey = lookup.lookup(host.name, host, required=True)
        if nkey is not None:
            users.append(listener_user(host, nkey, templates))
            users += lookup.retired(users[-1])
    if lookup.missing:
        names = ", ".join(lookup.missing)
        raise NatsConfigError(
            f"no NKey for listener host(s) {names}: set a host's 'nkey' variable, or put "
            f"<host>.pub files in --keys-dir (hlplay keys new HOST --dir DIR)"
        )
    tiers = tiers_of(inventory)
    for tier in tiers:
        name = DEPLOYER_PREFIX + tier
        nkey = lookup.lookup(name, required=False)
        if nkey is not None:
            users.append(deployer_user(name, nkey, [tier], templates, "deployer"))
            users += lookup.retired(users[-1])
    nkey = lookup.lookup(ADMIN, required=False)
    if nkey is not None:
        users.append(deployer_user(ADMIN, nkey, tiers, templates, "admin"))
        users += lookup.retired(users[-1])
    if not any(u.kind != "listener" for u in users):
        raise NatsConfigError(
            "no deployer key: create 'admin' and/or 'deployer-<tier>' keys "
            "(hlplay keys new admin --dir DIR) so that someone may deploy"
        )
    seen: dict[str, str] = {}
    for user in users:
        if user.nkey in seen:
            raise NatsConfigError(
                f"{user.name} and {seen[user.nkey]} share the same NKey; every user needs its own"
            )
        seen[user.nkey] = user.name
    return users


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def render_users(users: Sequence[NatsUser]) -> str:
    out = ["authorization {", "  users = ["]
    for user in users:
        out.append(f"    # {user.comment}")
        out.append("    {")
        out.append(f"      nkey: {json.dumps(user.nkey)}")
        out.append("      permissions: {")
        out.append(f"        publish: {{ allow: {_list(user.publish)} }}")
        out.append(f"        subscribe: {{ allow: {_list(user.subscribe)} }}")
        if user.allow_responses:
            out.append("        allow_responses: true")
        out.append("      }")
        out.append("    }")
    out.append("  ]")
    out.append("}")
    return "\n".join(out) + "\n"


def render_config(
    inventory: Inventory,
    *,
    keys_dir: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str] | None = None,
    extra: str = "",
    now: float | None = None,
) -> str:
    """A nats-server config (authorization block) for ``inventory``.

    ``keys`` maps user names (host names, ``admin``, ``deployer-<tier>``) to
    public keys and wins over the other sources; ``extra`` is appended as is
    (e.g. ``max_payload``, ``jetstream``). Retired keys are let in when their
    grace period has not ended at ``now`` (default: the current time).
    """
    users = plan_users(inventory, keys_dir=keys_dir, keys=keys, now=now)
    head = (
        "# nats-server authorization for an hlplay fleet, generated by `hlplay nats config`.\n"
        "# Regenerate it whenever hosts, tiers, roles or keys change.\n"
    )
    ends = [u.retired_until for u in users if u.retired_until is not None]
    if ends:
        head += (
            "# Retired keys are let in until the time their comment gives; regenerate it "
            f"after {utc_text(min(ends))} to drop the first.\n"
        )
    return head + render_users(users) + (("\n" + extra.rstrip() + "\n") if extra else "")
