"""Who may sign what: the deployer keys each tier's listeners trust, and each host's own key.

* **Requests.** A listener of tier ``T`` accepts a signed request only from a
  key in its trusted-keys file, ``<dir>/T.deployers``: the public keys of
  ``deployer-T`` and ``admin`` (the same users, and so the same keys, as the
  NATS authorization of :mod:`hlplay.auth.natsconfig`). A file holds any
  number of keys, so that an old and a new key can both be valid while a key
  is rotated.
* **Responses.** The controller accepts a listener's response only when it is
  signed by that host's key: the host variable ``hlplay_listener_key`` when
  the listener signs with a seed of its own (``--signing-seed``), else the
  host's NATS user key (the ``nkey`` variable, ``<keys_dir>/<host>.pub`` or
  ``<keys_dir>/<host>.seed``), the seed it already holds.

A trusted-keys file is text, one public key a line; blank lines and ``#``
comments are ignored.

**Rotation.** A key rotated by ``hlplay keys rotate`` stays trusted, next to
its successor, until its grace period ends (:mod:`hlplay.auth.keys`): the
keys taken from a keys directory are the current one and every retired one
still in grace, and the trusted-keys file marks the retired ones with a
comment saying until when. An expired key is left out of the next file
generated; a listener that has not been given that file still trusts it, so
the grace period is also the time to redeploy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hlplay.auth.keys import (
    KeyFileError,
    check_name,
    find_public_key,
    find_public_keys,
    retired_keys,
)
from hlplay.auth.natsconfig import ADMIN, DEPLOYER_PREFIX, tiers_of
from hlplay.errors import HlplayError, Location
from hlplay.inventory.model import Host, Inventory
from hlplay.protocol.signing import is_public_key

DEPLOYERS_SUFFIX = ".deployers"
#: Host variable: the public key the host's listener signs responses with.
LISTENER_KEY_VAR = "hlplay_listener_key"
# The NATS user key, which the listener signs with unless told otherwise.
NATS_KEY_VAR = "nkey"
MAX_TRUST_FILE_BYTES = 1024 * 1024


class TrustFileError(HlplayError):
    """A trusted-keys file, or a host's key, that cannot be used."""


def deployer_names(tier: str) -> tuple[str, str]:
    """The key names whose holders may deploy to ``tier``."""
    return (DEPLOYER_PREFIX + tier, ADMIN)


def trust_file_path(directory: str | os.PathLike[str], tier: str) -> Path:
    return Path(directory) / f"{check_name(tier)}{DEPLOYERS_SUFFIX}"


def parse_allowed_keys(text: str, source: str = "<keys>") -> frozenset[str]:
    """The public keys of a trusted-keys file's text; errors name ``source`` and the line."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        where = Location(source, number)
        if value.startswith("S"):
            # Say so without echoing it: a secret pasted here must not also
            # end up in a log.
            raise TrustFileError(
                "this is an NKey seed, a secret, not a public key: remove it and "
                "replace that key (its seed has been exposed)",
                where,
            )
        if not is_public_key(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise TrustFileError(
                f"not an NKey public key (U… or N…, 56 characters, checksum checked): {shown!r}",
                where,
            )
        found.append(value)
    return frozenset(found)


def load_allowed_keys(path: str | os.PathLike[str]) -> frozenset[str]:
    """The public keys in a trusted-keys file; raises :class:`TrustFileError`.

    An empty file is valid and trusts nobody.
    """
    where = Location(str(path))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustFileError(f"cannot read: {exc.strerror or exc}", where) from None
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise TrustFileError(f"larger than {MAX_TRUST_FILE_BYTES} bytes", where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TrustFileError("not UTF-8 text", where) from None
    return parse_allowed_keys(text, str(path))


def _where(host: Host) -> str:
    return f"{host.location}: " if host.location else ""


def tier_deployers(
    inventory: Inventory,
    *,
    keys_dir: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str | Sequence[str]] | None = None,
    now: float | None = None,
) -> dict[str, tuple[str, ...]]:
    """Per tier of the inventory, the public keys that may deploy to it.

    ``keys`` maps key names (``admin``, ``deployer-<tier>``) to one public key
    or several (a rotation's old and new) and wins over ``keys_dir``, where a
    name's keys are its current one and its retired ones whose grace period
    has not ended at ``now``. A tier with no key gets an empty tuple: its
    listeners accept no request.
    """
    given = dict(keys or {})
    out: dict[str, tuple[str, ...]] = {}
    for tier in tiers_of(inventory):
        found: list[str] = []
        for name in deployer_names(tier):
            value = given.get(name)
            if value is None and keys_dir is not None:
                try:
                    value = find_public_keys(name, keys_dir, now=now)
                except KeyFileError as exc:
                    raise TrustFileError(str(exc)) from None
            values = [value] if isinstance(value, str) else list(value or ())
            for key in values:
                if not is_public_key(key):
                    raise TrustFileError(f"key {name}: not an NKey public key: {key!r}")
            found += values
        out[tier] = tuple(dict.fromkeys(found))
    return out


def render_trust_file(
    tier: str, keys: Sequence[str], notes: Mapping[str, str] | None = None
) -> str:
    """The file's text; ``notes`` (key -> text) become a comment after a key."""
    names = " and ".join(deployer_names(tier))
    head = [
        f"# Deployer keys listeners of tier {tier} accept signed requests from ({names}).",
        "# Generated by `hlplay nats config --trust-dir`; one NKey public key a line.",
    ]
    if not keys:
        head.append("# No key: these listeners accept no request.")
    given = notes or {}
    lines = [f"{key}  # {given[key]}" if given.get(key) else key for key in keys]
    return "\n".join([*head, *lines]) + "\n"


def write_trust_files(
    directory: str | os.PathLike[str],
    trust: Mapping[str, Sequence[str]],
    *,
    notes: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``<directory>/<tier>.deployers`` for each tier; returns the paths written.

    Each file is replaced whole (written beside it, then renamed), so that a
    listener reading it never sees half a file. ``notes`` (e.g.
    :func:`hlplay.auth.keys.retired_notes`) annotate keys with a comment.
    """
    base = Path(directory)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrustFileError(f"cannot create: {exc.strerror or exc}", Location(str(base))) from None
    written: list[Path] = []
    for tier, keys in trust.items():
        for key in keys:
            if not is_public_key(key):
                raise TrustFileError(f"tier {tier}: not an NKey public key: {key!r}")
        path = trust_file_path(base, tier)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(render_trust_file(tier, keys, notes))
            os.replace(tmp, path)
        except OSError as exc:
            raise TrustFileError(
                f"cannot write: {exc.strerror or exc}", Location(str(path))
            ) from None
        written.append(path)
    return written


def host_public_key(
    inventory: Inventory, host: str | Host, *, keys_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """The public key ``host``'s listener signs with, or None when none is known.

    From, in order: the host's ``hlplay_listener_key`` variable, its ``nkey``
    variable, ``<keys_dir>/<host>.pub``, ``<keys_dir>/<host>.seed``.
    """
    entry = host if isinstance(host, Host) else inventory.hosts.get(host)
    if entry is None:
        raise TrustFileError(f"no host {host!r} in the inventory")
    for var in (LISTENER_KEY_VAR, NATS_KEY_VAR):
        if var in entry.vars:
            value = entry.vars[var]
            if not is_public_key(value):
                raise TrustFileError(
                    f"{_where(entry)}host {entry.name}: '{var}' is not an NKey public key "
                    "(U… or N…, 56 characters)"
                )
            return str(value)
    if keys_dir is None:
        return None
    try:
        return find_public_key(entry.name, keys_dir)
    except KeyFileError as exc:
        raise TrustFileError(f"host {entry.name}: {exc}") from None


def host_public_keys(
    inventory: Inventory,
    host: str | Host,
    *,
    keys_dir: str | os.PathLike[str] | None = None,
    now: float | None = None,
) -> frozenset[str]:
    """Every key ``host``'s answers may be signed with: :func:`host_public_key`, and
    the retired keys of ``<keys_dir>/<host>.retired`` whose grace has not ended.

    Empty when no key is known. A listener keeps signing with its old seed
    until it is given the new one, so its answers must still verify meanwhile.
    """
    current = host_public_key(inventory, host, keys_dir=keys_dir)
    found = set() if current is None else {current}
    if keys_dir is not None:
        name = host.name if isinstance(host, Host) else host
        try:
            found.update(r.key for r in retired_keys(name, keys_dir, now=now))
        except KeyFileError as exc:
            raise TrustFileError(f"host {name}: {exc}") from None
    return frozenset(found)


def listener_keys(
    inventory: Inventory, *, keys_dir: str | os.PathLike[str] | None = None
) -> dict[str, str | None]:
    """For every host with a listener, the key its responses must verify against."""
    return {
        host.name: host_public_key(inventory, host, keys_dir=keys_dir)
        for host in inventory.hosts.values()
        if host.has_listener
    }
