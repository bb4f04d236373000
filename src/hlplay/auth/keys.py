"""NKey user keys: ``<name>.seed`` (secret, mode 0600) and ``<name>.pub``.

A seed file holds one line, the user seed (``SU…``); the listener reads it with
``--nkey-file`` and the controller through the inventory's
``hlplay.nats.credentials``. The public key (``U…``) goes into the server's
authorization config.

Rotation (:func:`rotate`, ``hlplay keys rotate NAME``) moves ``<name>.seed``
and ``<name>.pub`` aside to ``<name>.old-<UTC time>.seed`` / ``.pub``, writes
a new pair under the old names, and appends the old public key to
``<name>.retired``, one JSON object a line::

    {"key": "U…", "until": 1796908800.0, "retired": 1796304000.0,
     "seed": "admin.old-20261203T132000Z.seed"}

(one line in the file; ``retired`` and ``seed`` are for people and for prune).

``until`` (seconds since the epoch) ends the grace period: until then
:func:`find_public_keys` returns the retired key after the current one, so
that the NATS authorization and the trusted-keys files still let the old
key in while its holders move to the new one. :func:`prune` deletes the
records and the old files of keys whose grace has ended.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hlplay.errors import HlplayError

PUBLIC_KEY_RE = re.compile(r"^U[A-Z2-7]{55}$")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
RETIRED_SUFFIX = ".retired"
DEFAULT_GRACE = 7 * 86400.0
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Far enough for any grace period, near enough that the timestamp stays a
# valid date everywhere it is printed.
MAX_GRACE = 10 * 365 * 86400.0


class KeyFileError(HlplayError):
    """A key file that cannot be written or read."""


def check_name(name: str) -> str:
    if not KEY_NAME_RE.fullmatch(name) or ".." in name:
        raise KeyFileError(
            f"invalid key name {name!r}: use letters, digits, '.', '-' and '_' (no path separators)"
        )
    return name


def generate() -> tuple[str, str]:
    """A new user key pair: ``(seed, public_key)``."""
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public: bytes = nkeys.from_seed(seed).public_key
    return seed.decode(), public.decode()


def public_key_of(seed: str) -> str:
    import nkeys

    try:
        public: bytes = nkeys.from_seed(seed.strip().encode()).public_key
    except Exception as exc:  # nkeys raises several unrelated types
        raise KeyFileError(f"not a valid NKey seed ({type(exc).__name__})") from None
    return public.decode()


def is_user_public_key(value: object) -> bool:
    """True for a well-formed NKey user public key (prefix and checksum checked)."""
    if not isinstance(value, str) or not PUBLIC_KEY_RE.fullmatch(value):
        return False
    import nkeys

    try:
        raw = base64.b32decode(value)
    except (binascii.Error, ValueError):
        return False
    body, crc = raw[:-2], raw[-2:]
    return bool(len(body) == 33 and struct.unpack("<H", crc)[0] == nkeys.crc16(body))


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def new_seed(path: str | os.PathLike[str], *, force: bool = False) -> str:
    """Write a new user seed to ``path`` (mode 0600) and its ``.pub`` beside it.

    Returns the public key. An existing seed is kept unless ``force``.
    """
    seed_path = Path(path)
    if seed_path.exists() and not force:
        raise KeyFileError(f"{seed_path} exists; refusing to overwrite a key (use --force)")
    seed, public = generate()
    pub_path = (
        seed_path.with_suffix(".pub")
        if seed_path.suffix == ".seed"
        else Path(str(seed_path) + ".pub")
    )
    where = seed_path
    try:
        seed_path.parent.mkdir(parents=True, exist_ok=True)
        if seed_path.exists():
            seed_path.unlink()
        write_private(seed_path, seed + "\n")
        where = pub_path
        pub_path.write_text(public + "\n")
    except OSError as exc:
        raise KeyFileError(f"{where}: {exc.strerror or exc}") from None
    return public


def new_named(name: str, directory: str | os.PathLike[str] = ".", *, force: bool = False) -> str:
    """``<dir>/<name>.seed`` and ``<dir>/<name>.pub``; returns the public key."""
    return new_seed(Path(directory) / f"{check_name(name)}.seed", force=force)


def read_seed(path: str | os.PathLike[str]) -> str:
    try:
        seed = Path(path).read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not an NKey user seed (not text)") from None
    if not seed.startswith("SU"):
        raise KeyFileError(f"{path}: not an NKey user seed (expected a line starting with 'SU')")
    return seed


def find_public_key(name: str, directory: str | os.PathLike[str]) -> str | None:
    """The public key of ``name`` from ``<dir>/<name>.pub`` or ``<dir>/<name>.seed``."""
    base = Path(directory)
    pub = base / f"{name}.pub"
    if pub.is_file():
        try:
            value = pub.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"{pub}: cannot read: {exc}") from None
        if not is_user_public_key(value):
            raise KeyFileError(f"{pub}: not an NKey user public key")
        return value
    seed = base / f"{name}.seed"
    if seed.is_file():
        return public_key_of(read_seed(seed))
    return None


def parse_duration(text: str) -> float:
    """Seconds in ``7d``, ``36h``, ``1d12h``, ``90m``, ``0s`` or a plain number of seconds."""
    value = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif value and _DURATION_RE.sub("", value) == "":
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_RE.findall(value))
    if seconds is None or not math.isfinite(seconds) or seconds > MAX_GRACE:
        raise KeyFileError(f"not a duration: {text!r} (e.g. 7d, 12h, 30m, 0s; at most 10 years)")
    return seconds


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RetiredKey:
    """A key replaced by :func:`rotate`, still accepted while ``until`` is ahead."""

    name: str
    key: str
    until: float
    retired: float
    seed: str | None  # the old seed's file name, beside the record

    def valid(self, now: float) -> bool:
        return now < self.until

    def note(self) -> str:
        return f"retired {self.name} key, accepted until {utc_text(self.until)}"


def retired_path(name: str, directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / f"{check_name(name)}{RETIRED_SUFFIX}"


def read_retired(name: str, directory: str | os.PathLike[str]) -> list[RetiredKey]:
    """Every record of ``<dir>/<name>.retired``, expired ones too; none when there is no file."""
    path = retired_path(name, directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read: {exc}") from None
    found: list[RetiredKey] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        key = doc.get("key") if isinstance(doc, dict) else None
        until = doc.get("until") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or not is_user_public_key(key)
            or isinstance(until, bool)
            or not isinstance(until, int | float)
            or not math.isfinite(until)
        ):
            raise KeyFileError(
                f'{path}:{number}: not a retired key record ({{"key": "U…", "until": <epoch>}})'
            )
        retired = doc.get("retired")
        seed = doc.get("seed")
        found.append(
            RetiredKey(
                name=name,
                key=str(key),
                until=float(until),
                retired=float(retired) if isinstance(retired, int | float) else float(until),
                seed=seed if isinstance(seed, str) and _old_seed_name(name, seed) else None,
            )
        )
    return found


def _old_seed_name(name: str, file_name: str) -> bool:
    # A record names the files prune deletes: only ever an old seed of this
    # name, never the current key nor anything outside the directory.
    return (
        bool(KEY_NAME_RE.fullmatch(file_name))
        and ".." not in file_name
        and file_name.startswith(f"{name}.old-")
        and file_name.endswith(".seed")
    )


def retired_keys(
    name: str, directory: str | os.PathLike[str], *, now: float | None = None
) -> list[RetiredKey]:
    """The retired keys of ``name`` whose grace period has not ended."""
    when = time.time() if now is None else now
    return [r for r in read_retired(name, directory) if r.valid(when)]


def find_public_keys(
    name: str, directory: str | os.PathLike[str], *, now: float | None = None
) -> tuple[str, ...]:
    """The current key of ``name`` (if any) first, then its retired keys still in grace."""
    current = find_public_key(name, directory)
    keys = [] if current is None else [current]
    keys += [r.key for r in retired_keys(name, directory, now=now)]
    return tuple(dict.fromkeys(keys))


def _retired_names(directory: Path) -> Iterator[str]:
    try:
        entries = sorted(directory.glob("*" + RETIRED_SUFFIX))
    except OSError:
        return
    for entry in entries:
        name = entry.name[: -len(RETIRED_SUFFIX)]
        if KEY_NAME_RE.fullmatch(name) and ".." not in name:
            yield name


def retired_notes(
    directory: str | os.PathLike[str] | None, *, now: float | None = None
) -> dict[str, str]:
    """Retired public keys still in grace, each with a note saying whose it was and until when."""
    if directory is None:
        return {}
    notes: dict[str, str] = {}
    for name in _retired_names(Path(directory)):
        for record in retired_keys(name, directory, now=now):
            notes[record.key] = record.note()
    return notes


@dataclass(frozen=True)
class Rotation:
    name: str
    public_key: str
    retired: RetiredKey
    old_seed: Path


def _old_name(directory: Path, name: str, when: float) -> Path:
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = directory / f"{name}.old-{stamp}.seed"
    n = 2
    while candidate.exists() or candidate.with_suffix(".pub").exists():
        candidate = directory / f"{name}.old-{stamp}-{n}.seed"
        n += 1
    return candidate


def rotate(
    name: str,
    directory: str | os.PathLike[str] = ".",
    *,
    grace: float = DEFAULT_GRACE,
    now: float | None = None,
) -> Rotation:
    """Replace ``<dir>/<name>.seed`` with a new key; the old one stays valid for ``grace`` seconds.

    The new seed is written first and moved into place last, so that a
    failure leaves the old key current rather than no key at all.
    """
    check_name(name)
    if grace < 0 or not math.isfinite(grace):
        raise KeyFileError(f"grace period must be 0 or more seconds, not {grace!r}")
    base = Path(directory)
    seed_path = base / f"{name}.seed"
    pub_path = base / f"{name}.pub"
    if not seed_path.is_file():
        raise KeyFileError(
            f"{seed_path}: no such key to rotate (create one with hlplay keys new {name} "
            f"--dir {base})"
        )
    old_public = public_key_of(read_seed(seed_path))
    if not os.access(base, os.W_OK | os.X_OK):
        raise KeyFileError(f"{base}: not writable; cannot rotate {name}")
    # whole milliseconds: the record stays readable and compares exactly
    when = round(time.time() if now is None else now, 3)
    seed, public = generate()
    old_seed = _old_name(base, name, when)
    record = RetiredKey(name, old_public, round(when + grace, 3), when, old_seed.name)
    fresh = base / f"{name}.seed.new"
    where = fresh
    moved: list[tuple[Path, Path]] = []
    try:
        fresh.unlink(missing_ok=True)
        write_private(fresh, seed + "\n")
        where = retired_path(name, base)
        line = {"key": record.key, "until": record.until, "retired": record.retired}
        with open(where, "a") as fh:
            fh.write(json.dumps({**line, "seed": record.seed}) + "\n")
        where = old_seed
        os.rename(seed_path, old_seed)
        moved.append((old_seed, seed_path))
        old_pub = old_seed.with_suffix(".pub")
        where = old_pub
        if pub_path.exists():
            os.rename(pub_path, old_pub)
            moved.append((old_pub, pub_path))
        else:
            old_pub.write_text(old_public + "\n")
        where = seed_path
        os.replace(fresh, seed_path)
        moved.clear()
        where = pub_path
        tmp_pub = base / f"{name}.pub.new"
        tmp_pub.write_text(public + "\n")
        os.replace(tmp_pub, pub_path)
    except OSError as exc:
        for src, dst in reversed(moved):
            with contextlib.suppress(OSError):
                os.rename(src, dst)
        with contextlib.suppress(OSError):
            fresh.unlink(missing_ok=True)
        raise KeyFileError(f"{where}: {exc.strerror or exc}") from None
    return Rotation(name=name, public_key=public, retired=record, old_seed=old_seed)


def prune(
    directory: str | os.PathLike[str],
    names: list[str] | None = None,
    *,
    now: float | None = None,
) -> list[Path]:
    """Forget the retired keys whose grace has ended: their records and old seed/pub files.

    Returns the files deleted (a ``.retired`` file left empty among them).
    """
    base = Path(directory)
    when = time.time() if now is None else now
    removed: list[Path] = []
    for name in names if names is not None else list(_retired_names(base)):
        records = read_retired(name, base)
        expired = [r for r in records if not r.valid(when)]
        if not expired:
            continue
        path = retired_path(name, base)
        keep = [r for r in records if r.valid(when)]
        where = path
        try:
            for record in expired:
                if record.seed is None:
                    continue
                for old in (base / record.seed, (base / record.seed).with_suffix(".pub")):
                    where = old
                    if old.exists():
                        old.unlink()
                        removed.append(old)
            where = path
            if keep:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(
                    "".join(
                        json.dumps(
                            {"key": r.key, "until": r.until, "retired": r.retired, "seed": r.seed}
                        )
                        + "\n"
                        for r in keep
                    )
                )
                os.replace(tmp, path)
            else:
                path.unlink()
                removed.append(path)
        except OSError as exc:
            raise KeyFileError(f"{where}: {exc.strerror or exc}") from None
    return removed
