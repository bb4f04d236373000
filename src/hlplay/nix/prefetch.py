"""Source hashes as Nix computes them: a file, a directory (NAR), or a URL.

Nix writes the same SHA-256 three ways: base32 in Nix's own alphabet (what
``nix-prefetch-url`` prints and ``sha256 = "…"`` usually holds), SRI
(``sha256-<base64>``, what ``hash = "…"`` holds) and hex. The digest always
comes from Nix itself (``nix hash file``, ``nix hash path``,
``nix-prefetch-url``); the conversions between the three are done here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from hlplay.errors import HlplayError
from hlplay.proc import run_argv

NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
SHA256_BYTES = 32
NIX_COMMAND = ("--extra-experimental-features", "nix-command")
SRI_RE = re.compile(r"^sha256-([A-Za-z0-9+/]{43}=)$")
BASE32_RE = re.compile(rf"^[{NIX32_ALPHABET}]{{52}}$")
HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class PrefetchError(HlplayError):
    """Nix could not hash a source."""


@dataclass(frozen=True)
class Hashes:
    """One SHA-256 digest in Nix's three notations."""

    digest: bytes
    store_path: str | None = None

    @property
    def base32(self) -> str:
        return nix32_encode(self.digest)

    @property
    def sri(self) -> str:
        return "sha256-" + base64.b64encode(self.digest).decode("ascii")

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def as_format(self, fmt: str) -> str:
        """The digest written as ``base32``, ``sri`` or ``hex``."""
        if fmt == "sri":
            return self.sri
        if fmt == "hex":
            return self.hex
        return self.base32

    def to_dict(self) -> dict[str, str | None]:
        return {
            "base32": self.base32,
            "sri": self.sri,
            "hex": self.hex,
            "store_path": self.store_path,
        }


def nix32_encode(digest: bytes) -> str:
    """Nix's base32: its own alphabet, least significant bits first."""
    length = (len(digest) * 8 - 1) // 5 + 1
    out = []
    for n in range(length - 1, -1, -1):
        b = n * 5
        i, j = divmod(b, 8)
        c = digest[i] >> j
        if i + 1 < len(digest):
            c |= digest[i + 1] << (8 - j)
        out.append(NIX32_ALPHABET[c & 0x1F])
    return "".join(out)


def nix32_decode(text: str, size: int = SHA256_BYTES) -> bytes:
    """The inverse of :func:`nix32_encode`; ValueError on a bad string."""
    if len(text) != (size * 8 - 1) // 5 + 1:
        raise ValueError(f"a base32 SHA-256 has 52 characters, not {len(text)}")
    out = bytearray(size)
    for n, ch in enumerate(reversed(text)):
        digit = NIX32_ALPHABET.find(ch)
        if digit < 0:
            raise ValueError(f"{ch!r} is not a Nix base32 character")
        b = n * 5
        i, j = divmod(b, 8)
        out[i] |= (digit << j) & 0xFF
        carry = digit >> (8 - j)
        if i + 1 < size:
            out[i + 1] |= carry
        elif carry:
            raise ValueError("base32 value out of range")
    return bytes(out)


def hash_format(value: str) -> str | None:
    """How a SHA-256 is written: ``sri``, ``base32``, ``hex``, or None if it is none of them."""
    if SRI_RE.fullmatch(value):
        return "sri"
    if BASE32_RE.match(value):
        return "base32"
    if HEX_RE.fullmatch(value):
        return "hex"
    return None


def parse_hash(value: str) -> Hashes:
    """A SHA-256 in any of the three notations; ValueError otherwise."""
    fmt = hash_format(value.strip())
    value = value.strip()
    if fmt == "sri":
        return Hashes(base64.b64decode(value[len("sha256-") :]))
    if fmt == "base32":
        return Hashes(nix32_decode(value))
    if fmt == "hex":
        return Hashes(binascii.unhexlify(value))
    raise ValueError(f"{value!r} is not a SHA-256 in base32, SRI or hex")


async def _nix(argv: list[str], what: str, timeout: float) -> str:
    res = await run_argv(argv, timeout=timeout)
    if res.rc != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit {res.rc}"
        if res.rc == 127:
            detail = f"{argv[0]} not found (is Nix installed?)"
        raise PrefetchError(f"cannot hash {what}: {detail}")
    return res.stdout


async def hash_path(path: str | Path, *, recursive: bool = False, timeout: float = 300) -> Hashes:
    """SHA-256 of a file's contents (flat), or of its NAR serialisation (recursive)."""
    p = Path(path)
    if not p.exists():
        raise PrefetchError(f"cannot hash {p}: no such file or directory")
    if not recursive and not p.is_file():
        raise PrefetchError(f"cannot hash {p} flat: it is not a regular file (use recursive)")
    mode = "path" if recursive else "file"
    out = await _nix(
        ["nix", *NIX_COMMAND, "hash", mode, "--base32", "--type", "sha256", str(p)], str(p), timeout
    )
    return Hashes(nix32_decode(out.strip()))


async def prefetch_url(
    url: str, *, unpack: bool = False, name: str | None = None, timeout: float = 600
) -> Hashes:
    """``nix-prefetch-url``: download (or read a ``file://`` URL) into the store and hash it."""
    if not re.match(r"^(https?|ftp|file)://", url) or any(c in url for c in "\n\r\0 "):
        raise PrefetchError(f"cannot prefetch {url!r}: not an http(s), ftp or file URL")
    argv = ["nix-prefetch-url", "--type", "sha256", "--print-path"]
    if unpack:
        argv.append("--unpack")
    if name:
        argv += ["--name", name]
    argv.append(url)
    out = await _nix(argv, url, timeout)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        raise PrefetchError(f"cannot prefetch {url}: nix-prefetch-url printed nothing")
    store_path = lines[1] if len(lines) > 1 else None
    return Hashes(nix32_decode(lines[0]), store_path=store_path)
