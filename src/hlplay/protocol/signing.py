"""Signed messages: an NKey (ed25519) signature over a message's canonical form.

A signed message is the message itself plus one field, ``sig``::

    {"action": "switch", "revision": "main", "id": "6f1c…", …,
     "sig": {"key": "U…", "ts": 1764765000.25, "sig": "<base64url>"}}

The signature covers the canonical form (:func:`canonical`) of the whole
message with the envelope but without the envelope's own ``sig`` member: every
field of the message (the request id among them), the timestamp and the
signer's public key. A peer that does not know ``sig`` ignores it, so a signed
request is still a valid homelab-deploy request.

Everything here is pure: no I/O, no clock unless ``now`` is left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

from hlplay.protocol.messages import ErrorCode

#: The envelope's field in a message.
SIG_FIELD = "sig"
#: Seconds a timestamp may differ from the verifier's clock, either way.
DEFAULT_WINDOW = 300.0
#: Entries a :class:`ReplayGuard` holds at most.
DEFAULT_REPLAY_CAPACITY = 100_000
# Signatures of another protocol, or of a later version of this one, must
# never verify as this one's.
DOMAIN = b"hlplay-sig-v1\n"
NONCE_BYTES = 12
PUBLIC_KEY_LEN = 56
# 64 bytes in unpadded base64url: 85 characters of 6 bits, one of 4 bits.
_SIG_TEXT_RE = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
NONCE_MAX = 64
# NKey public keys a signer may have: users (U…) and servers (N…).
_PUBLIC_PREFIXES = {
    "U": nkeys.PREFIX_BYTE_USER,
    "N": nkeys.PREFIX_BYTE_SERVER,
}


class SignatureError(ValueError):
    """A message refused by :func:`verify`; ``code`` is the response's error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedBy:
    """Who signed a message that verified, and when."""

    key: str
    ts: float
    id: str | None
    nonce: str | None


def canonical(doc: Mapping[str, Any]) -> bytes:
    """The message as signed: JSON, keys sorted, no whitespace, UTF-8, no ``sig`` field.

    Raises :class:`ValueError` (or :class:`TypeError`) for what JSON cannot
    carry exactly (NaN, infinities, non-string keys, other types).
    """
    return _json({k: v for k, v in doc.items() if k != SIG_FIELD})


def _json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _signed_bytes(doc: Mapping[str, Any], envelope: Mapping[str, Any]) -> bytes:
    """What the signature is over: the message with its envelope, less the signature itself."""
    body = {k: v for k, v in doc.items() if k != SIG_FIELD}
    body[SIG_FIELD] = {k: v for k, v in envelope.items() if k != SIG_FIELD}
    return DOMAIN + _json(body)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64_signature(text: str) -> bytes | None:
    # Strict: the decoder would skip stray characters, and one signature
    # must have one spelling.
    if not _SIG_TEXT_RE.fullmatch(text):
        return None
    return base64.urlsafe_b64decode(text + "==")


class Signer:
    """An NKey seed ready to sign; keeps the derived key so each message costs one signature."""

    def __init__(self, seed: str | bytes) -> None:
        raw = seed.strip().encode() if isinstance(seed, str) else seed.strip()
        try:
            self._pair = nkeys.from_seed(raw)
            self.public_key: str = self._pair.public_key.decode()
        except Exception as exc:  # nkeys raises several unrelated types
            raise ValueError(f"not a valid NKey seed ({type(exc).__name__})") from None
        if self.public_key[0] not in _PUBLIC_PREFIXES:
            raise ValueError("an NKey user (SU…) or server (SN…) seed is needed to sign")

    def sign_bytes(self, data: bytes) -> bytes:
        signature: bytes = self._pair.sign(data)
        return signature


def sign(
    doc: Mapping[str, Any],
    seed: str | bytes | Signer,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """``doc`` plus its envelope; any envelope ``doc`` already has is replaced.

    A message without an ``id`` gets a random nonce (unless one is given), so
    that two equal messages signed in the same instant still differ and a
    :class:`ReplayGuard` can tell them apart.
    """
    signer = seed if isinstance(seed, Signer) else Signer(seed)
    body = {k: v for k, v in doc.items() if k != SIG_FIELD}
    ts = time.time() if now is None else now
    envelope: dict[str, Any] = {"key": signer.public_key, "ts": ts}
    if nonce is None and not isinstance(body.get("id"), str):
        nonce = _b64(os.urandom(NONCE_BYTES))
    if nonce is not None:
        envelope["nonce"] = nonce
    envelope[SIG_FIELD] = _b64(signer.sign_bytes(_signed_bytes(body, envelope)))
    body[SIG_FIELD] = envelope
    return body


def is_public_key(value: object) -> bool:
    """True for a well-formed NKey user (U…) or server (N…) public key, checksum checked."""
    return _raw_public_key(value) is not None


def _raw_public_key(value: object) -> bytes | None:
    if not isinstance(value, str) or len(value) != 56 or value[0] not in _PUBLIC_PREFIXES:
        return None
    try:
        raw = base64.b32decode(value)
    except (binascii.Error, ValueError):
        return None
    body, crc = raw[:-2], raw[-2:]
    if len(body) != 33 or body[0] != _PUBLIC_PREFIXES[value[0]]:
        return None
    if struct.unpack("<H", crc)[0] != nkeys.crc16(body):
        return None
    return bytes(body[1:])


@lru_cache(maxsize=4096)
def _verify_key(public_key: str) -> nacl.signing.VerifyKey | None:
    # Decoding and checking a key costs half as much as verifying a
    # signature; a listener sees the same few deployer keys over and over.
    # Bounded, so that a flood of made-up keys cannot grow it.
    raw = _raw_public_key(public_key)
    return None if raw is None else nacl.signing.VerifyKey(raw)


def _timestamp(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        ts = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return ts if math.isfinite(ts) else None


def _envelope(
    doc: Mapping[str, Any],
) -> tuple[dict[str, Any], str, float, bytes, nacl.signing.VerifyKey]:
    envelope = doc.get(SIG_FIELD)
    if envelope is None:
        raise SignatureError(ErrorCode.UNSIGNED, "the message is not signed")
    if not isinstance(envelope, dict):
        raise SignatureError(ErrorCode.BAD_SIGNATURE, f"'{SIG_FIELD}' must be an object")
    key, ts, sig = envelope.get("key"), envelope.get("ts"), envelope.get(SIG_FIELD)
    # The length check first: _verify_key's cache must only ever hold key-sized strings.
    verify_key = _verify_key(key) if isinstance(key, str) and len(key) == PUBLIC_KEY_LEN else None
    if verify_key is None:
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, "the signing key is not an NKey public key (U… or N…)"
        )
    when = _timestamp(ts)
    if when is None:
        raise SignatureError(ErrorCode.BAD_SIGNATURE, "the timestamp must be a number")
    if not isinstance(sig, str):
        raise SignatureError(ErrorCode.BAD_SIGNATURE, "the signature must be a string")
    nonce = envelope.get("nonce")
    if nonce is not None and not (isinstance(nonce, str) and 0 < len(nonce) <= NONCE_MAX):
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, f"the nonce must be a string of at most {NONCE_MAX} characters"
        )
    unknown = set(envelope) - {"key", "ts", "nonce", SIG_FIELD}
    if unknown:
        # Unknown members would be signed but meaningless: refuse rather than
        # let a later version's field pass unread.
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, f"unknown envelope field(s): {', '.join(sorted(unknown))}"
        )
    raw_sig = _unb64_signature(sig)
    if raw_sig is None:
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, "the signature is not 64 bytes of unpadded base64url"
        )
    return envelope, str(key), when, raw_sig, verify_key


def verify(
    doc: Mapping[str, Any],
    allowed: Collection[str] | None,
    *,
    now: float | None = None,
    window: float = DEFAULT_WINDOW,
    guard: ReplayGuard | None = None,
) -> SignedBy:
    """Check ``doc``'s envelope; return who signed it, or raise :class:`SignatureError`.

    ``allowed`` is the set of public keys that may sign (``None``: any key whose
    signature verifies — for tools that only report the signer). With a
    ``guard`` the message is also refused when its id was seen in the window,
    and remembered otherwise; it is consulted last, so that only messages
    that verified can fill it.
    """
    envelope, key, ts, raw_sig, verify_key = _envelope(doc)
    if allowed is not None and key not in allowed:
        raise SignatureError(ErrorCode.KEY_NOT_ALLOWED, f"key {key} may not sign this message")
    try:
        data = _signed_bytes(doc, envelope)
    except (TypeError, ValueError, RecursionError):
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, "the message has no canonical JSON form"
        ) from None
    try:
        verify_key.verify(data, raw_sig)
    except nacl.exceptions.BadSignatureError:
        raise SignatureError(
            ErrorCode.BAD_SIGNATURE, "the signature does not match the message"
        ) from None
    clock = time.time() if now is None else now
    if abs(clock - ts) > window:
        when = "ago" if ts < clock else "in the future"
        raise SignatureError(
            ErrorCode.STALE,
            f"signed {abs(clock - ts):.0f} s {when}; the window is ±{window:.0f} s",
        )
    raw_id = doc.get("id")
    nonce = envelope.get("nonce")
    signed = SignedBy(
        key=key,
        ts=ts,
        id=raw_id if isinstance(raw_id, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
    )
    if guard is not None:
        guard.check(signed, now=clock, window=window)
    return signed


class ReplayGuard:
    """Remembers which messages it let through for one window, to refuse them a second time.

    A message is known by its signer and its id (its nonce when it has no
    id). An entry is kept for ``window`` seconds after the message's own
    timestamp and then dropped: by then :func:`verify` refuses the message as
    stale anyway, so forgetting it opens nothing.

    ``capacity`` bounds memory. When it is reached the guard refuses new
    messages (``too_many_requests``) until entries age out, rather than
    forget one early: forgetting would let that message be replayed. Only
    messages with a valid, allowed signature ever get in, so filling the
    guard takes a trusted key, and the refusal lasts one window at most.
    """

    def __init__(
        self, *, window: float = DEFAULT_WINDOW, capacity: int = DEFAULT_REPLAY_CAPACITY
    ) -> None:
        if window <= 0 or capacity <= 0:
            raise ValueError("window and capacity must be positive")
        self.window = window
        self.capacity = capacity
        # (key, id) -> expiry. Insertion order is arrival order, and expiry is
        # ts + window with ts within the window of arrival, so the oldest
        # entries are found at the front (give or take 2 windows of skew,
        # which the sweep below allows for).
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def identity(signed: SignedBy) -> tuple[str, str] | None:
        name = signed.id if signed.id is not None else signed.nonce
        if name is None:
            return None
        return (signed.key, ("id:" if signed.id is not None else "nonce:") + name)

    def seen(self, signed: SignedBy, *, now: float | None = None) -> bool:
        """True when this message got through within the window (without remembering it)."""
        self.evict(time.time() if now is None else now)
        ident = self.identity(signed)
        return ident is not None and ident in self._seen

    def check(
        self, signed: SignedBy, *, now: float | None = None, window: float | None = None
    ) -> None:
        """Remember ``signed``, or raise :class:`SignatureError` if it is a replay or no room.

        ``window`` is the one :func:`verify` checked the timestamp against;
        an entry is kept as long as either window, or a replay would turn
        fresh again for the longer one.
        """
        clock = time.time() if now is None else now
        self.evict(clock)
        ident = self.identity(signed)
        if ident is None:
            raise SignatureError(
                ErrorCode.BAD_SIGNATURE,
                "the message has neither an id nor a nonce: a replay could not be told apart",
            )
        if ident in self._seen:
            what = f"request id {signed.id}" if signed.id is not None else "nonce"
            raise SignatureError(ErrorCode.REPLAYED, f"{what} was already seen from this key")
        if len(self._seen) >= self.capacity:
            raise SignatureError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"more than {self.capacity} signed requests in {self.window:.0f} s; try later",
            )
        self._seen[ident] = max(signed.ts, clock) + max(self.window, window or 0.0)

    def evict(self, now: float) -> None:
        """Forget entries whose message has gone stale."""
        seen = self._seen
        while seen:
            ident, expiry = next(iter(seen.items()))
            if expiry > now:
                break
            del seen[ident]
        if len(seen) >= self.capacity and now >= self._next_sweep:
            # Entries are near arrival order but not exactly (clock skew
            # between signers): before refusing, sweep all of them, but not
            # again before the earliest remaining entry expires, so that a
            # flood against a full guard costs one sweep, not one a message.
            for ident in [i for i, e in seen.items() if e <= now]:
                del seen[ident]
            self._next_sweep = min(seen.values(), default=now)
