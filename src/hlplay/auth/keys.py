"""NKey user keys: ``<name>.seed`` (secret, mode 0600) and ``<name>.pub``.

A seed file holds one line, the user seed (``SU…``); the listener reads it with
``--nkey-file`` and the controller through the inventory's
``hlplay.nats.credentials``. The public key (``U…``) goes into the server's
authorization config.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from pathlib import Path

from hlplay.errors import HlplayError

PUBLIC_KEY_RE = re.compile(r"^U[A-Z2-7]{55}$")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class KeyFileError(HlplayError):
    """A key file that cannot be written or read."""


def check_name(name: str) -> str:
    if not KEY_NAME_RE.match(name) or ".." in name:
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
    if not isinstance(value, str) or not PUBLIC_KEY_RE.match(value):
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
