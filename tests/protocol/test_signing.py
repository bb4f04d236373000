"""Signed messages with real NKey seeds: what verifies, and each way of being refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hlplay.auth.keys import generate
from hlplay.protocol.messages import DeployRequest, ErrorCode
from hlplay.protocol.signing import (
    SIG_FIELD,
    ReplayGuard,
    SignatureError,
    SignedBy,
    Signer,
    canonical,
    is_public_key,
    sign,
    verify,
)

NOW = 1_764_765_000.0


@pytest.fixture(scope="module")
def deployer() -> tuple[str, str]:
    return generate()


@pytest.fixture(scope="module")
def other() -> tuple[str, str]:
    return generate()


def _request(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        DeployRequest(action="switch", revision="main", reply_to="_INBOX.a.1", id="r1").to_json()
    )
    doc.update(extra)
    return doc


def _refused(code: ErrorCode, doc: dict[str, Any], allowed: Any, **kw: Any) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(doc, allowed, **kw)
    assert info.value.code == code, info.value.message
    return info.value


def test_round_trip_over_the_wire(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    signed = sign(_request(options={"sleep": 1, "note": "é"}), seed, now=NOW)
    wire = json.dumps(signed).encode()
    # a signed request is still a valid request for a listener that ignores the envelope
    assert DeployRequest.parse(wire).id == "r1"
    who = verify(json.loads(wire), {public}, now=NOW + 1)
    assert who == SignedBy(key=public, ts=NOW, id="r1", nonce=None)
    assert signed[SIG_FIELD]["key"] == public and is_public_key(public)


def test_canonical_form_ignores_key_order_and_the_envelope() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "ü"}, SIG_FIELD: {"whatever": 1}}
    b = {"a": {"x": "ü", "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b) == '{"a":{"x":"ü","y":[1,2]},"b":1}'.encode()


def test_key_order_on_the_wire_does_not_matter(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    signed = sign(_request(options={"b": 2, "a": 1}), seed, now=NOW)
    shuffled = dict(reversed(list(signed.items())))
    shuffled["options"] = {"a": 1, "b": 2}
    verify(shuffled, {public}, now=NOW)


def test_a_signer_reused_signs_like_the_seed(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    signer = Signer(seed)
    assert signer.public_key == public
    assert sign(_request(), signer, now=NOW) == sign(_request(), seed, now=NOW)


def test_messages_without_an_id_get_a_nonce(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    one = sign({"hostname": "web1", "tier": "test"}, seed, now=NOW)
    two = sign({"hostname": "web1", "tier": "test"}, seed, now=NOW)
    assert one[SIG_FIELD]["nonce"] != two[SIG_FIELD]["nonce"]
    assert verify(one, {public}, now=NOW).nonce == one[SIG_FIELD]["nonce"]


def test_no_signature_is_refused(deployer: tuple[str, str]) -> None:
    _refused(ErrorCode.UNSIGNED, _request(), {deployer[1]}, now=NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(revision="evil"),
        lambda d: d.update(id="r2"),
        lambda d: d.update(reply_to="_INBOX.b.1"),
        lambda d: d.update(extra="added"),
        lambda d: d.pop("reply_to"),
        lambda d: d[SIG_FIELD].update(ts=NOW + 1),
        lambda d: d[SIG_FIELD].update(nonce="added"),
        lambda d: d[SIG_FIELD].update(
            sig=d[SIG_FIELD]["sig"][:-2] + ("AA" if d[SIG_FIELD]["sig"][-2:] != "AA" else "BA")
        ),
    ],
    ids=["revision", "id", "reply_to", "field added", "field removed", "ts", "nonce", "sig"],
)
def test_a_tampered_message_is_refused(deployer: tuple[str, str], change: Any) -> None:
    seed, public = deployer
    doc = copy.deepcopy(sign(_request(), seed, now=NOW))
    change(doc)
    _refused(ErrorCode.BAD_SIGNATURE, doc, {public}, now=NOW)


@pytest.mark.parametrize(
    "envelope",
    [
        "not an object",
        {"key": "UNOTAKEY", "ts": NOW, "sig": "AAAA"},
        {"ts": NOW, "sig": "AAAA"},
        {"key": None, "ts": True, "sig": "AAAA"},
        {"ts": "soon"},
        {"ts": float("nan")},
        {"sig": 5},
        {"sig": "!!not base64!!"},
        {"sig": "AAAA"},
        {"ts": 10**400},
        {"key": "U" * 100_000},
        {"nonce": ""},
        {"nonce": "x" * 65},
        {"extension": 1},
    ],
)
def test_a_malformed_envelope_is_refused(deployer: tuple[str, str], envelope: Any) -> None:
    seed, public = deployer
    doc = sign(_request(), seed, now=NOW)
    if isinstance(envelope, dict):
        doc[SIG_FIELD] = {**doc[SIG_FIELD], **envelope}
        for key in [k for k, v in envelope.items() if v is None]:
            del doc[SIG_FIELD][key]
    else:
        doc[SIG_FIELD] = envelope
    _refused(ErrorCode.BAD_SIGNATURE, doc, {public}, now=NOW)


def test_a_message_with_no_canonical_form_is_refused(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    doc = sign(_request(), seed, now=NOW)
    doc["options"] = {"x": float("inf")}
    _refused(ErrorCode.BAD_SIGNATURE, doc, {public}, now=NOW)


def test_another_key_claiming_to_be_the_deployer_is_refused(
    deployer: tuple[str, str], other: tuple[str, str]
) -> None:
    # the forger signs with its own seed but names the allowed key
    doc = sign(_request(), other[0], now=NOW)
    doc[SIG_FIELD]["key"] = deployer[1]
    _refused(ErrorCode.BAD_SIGNATURE, doc, {deployer[1]}, now=NOW)


def test_a_key_not_allowed_for_the_tier_is_refused(
    deployer: tuple[str, str], other: tuple[str, str]
) -> None:
    doc = sign(_request(), other[0], now=NOW)
    err = _refused(ErrorCode.KEY_NOT_ALLOWED, doc, {deployer[1]}, now=NOW)
    assert other[1] in err.message
    _refused(ErrorCode.KEY_NOT_ALLOWED, doc, frozenset(), now=NOW)
    assert verify(doc, None, now=NOW).key == other[1]


@pytest.mark.parametrize("offset", [-301.0, 301.0, -86400.0, 86400.0])
def test_a_timestamp_outside_the_window_is_refused(
    deployer: tuple[str, str], offset: float
) -> None:
    seed, public = deployer
    doc = sign(_request(), seed, now=NOW + offset)
    _refused(ErrorCode.STALE, doc, {public}, now=NOW)
    verify(doc, {public}, now=NOW, window=abs(offset))


@pytest.mark.parametrize("offset", [-299.0, 299.0])
def test_a_timestamp_inside_the_window_is_accepted(
    deployer: tuple[str, str], offset: float
) -> None:
    seed, public = deployer
    verify(sign(_request(), seed, now=NOW + offset), {public}, now=NOW)


def test_a_replayed_request_is_refused(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    guard = ReplayGuard()
    doc = sign(_request(), seed, now=NOW)
    verify(doc, {public}, now=NOW, guard=guard)
    _refused(ErrorCode.REPLAYED, copy.deepcopy(doc), {public}, now=NOW + 10, guard=guard)
    # re-signed with the same id: still the same request
    again = sign(_request(), seed, now=NOW + 20)
    _refused(ErrorCode.REPLAYED, again, {public}, now=NOW + 20, guard=guard)
    # another request goes through
    verify(sign(_request(id="r2"), seed, now=NOW), {public}, now=NOW + 30, guard=guard)


def test_a_refused_message_does_not_fill_the_guard(
    deployer: tuple[str, str], other: tuple[str, str]
) -> None:
    guard = ReplayGuard()
    forged = sign(_request(), other[0], now=NOW)
    _refused(ErrorCode.KEY_NOT_ALLOWED, forged, {deployer[1]}, now=NOW, guard=guard)
    assert len(guard) == 0
    # the genuine request with that id still runs
    verify(sign(_request(), deployer[0], now=NOW), {deployer[1]}, now=NOW, guard=guard)


def test_the_same_id_from_two_keys_is_two_requests(
    deployer: tuple[str, str], other: tuple[str, str]
) -> None:
    guard = ReplayGuard()
    allowed = {deployer[1], other[1]}
    verify(sign(_request(), deployer[0], now=NOW), allowed, now=NOW, guard=guard)
    verify(sign(_request(), other[0], now=NOW), allowed, now=NOW, guard=guard)
    assert len(guard) == 2


def _signed_by(i: int, ts: float = NOW) -> SignedBy:
    return SignedBy(key="U" + "A" * 55, ts=ts, id=f"r{i}", nonce=None)


def test_the_guard_forgets_once_the_window_has_passed() -> None:
    guard = ReplayGuard(window=300.0)
    for i in range(10):
        guard.check(_signed_by(i, NOW + i), now=NOW + i)
    assert len(guard) == 10
    assert guard.seen(_signed_by(0), now=NOW + 299)
    assert not guard.seen(_signed_by(0), now=NOW + 300.5)
    guard.evict(NOW + 305)
    assert len(guard) == 4
    guard.evict(NOW + 10_000)
    assert len(guard) == 0


def test_a_full_guard_refuses_rather_than_forgets() -> None:
    guard = ReplayGuard(window=300.0, capacity=5)
    for i in range(5):
        guard.check(_signed_by(i), now=NOW)
    with pytest.raises(SignatureError) as info:
        guard.check(_signed_by(99), now=NOW + 1)
    assert info.value.code == ErrorCode.TOO_MANY_REQUESTS
    # what it holds is still refused as a replay, not forgotten
    with pytest.raises(SignatureError) as info:
        guard.check(_signed_by(0), now=NOW + 2)
    assert info.value.code == ErrorCode.REPLAYED
    assert len(guard) == 5
    # room again once the entries age out
    guard.check(_signed_by(99), now=NOW + 301)
    assert len(guard) == 1


def test_a_full_guard_sweeps_entries_out_of_order() -> None:
    # a future-dated message (clock skew) sits in front of ones that expire first
    guard = ReplayGuard(window=300.0, capacity=3)
    guard.check(_signed_by(0, NOW + 200), now=NOW)
    guard.check(_signed_by(1), now=NOW)
    guard.check(_signed_by(2), now=NOW)
    guard.check(_signed_by(3), now=NOW + 301)
    assert guard.seen(_signed_by(0), now=NOW + 301)
    assert len(guard) == 2


def test_the_guard_keeps_entries_for_the_longer_window(deployer: tuple[str, str]) -> None:
    seed, public = deployer
    guard = ReplayGuard(window=60.0)
    doc = sign(_request(), seed, now=NOW)
    verify(doc, {public}, now=NOW, window=600.0, guard=guard)
    _refused(ErrorCode.REPLAYED, doc, {public}, now=NOW + 500, window=600.0, guard=guard)


def test_the_guard_needs_an_id_or_a_nonce() -> None:
    guard = ReplayGuard()
    with pytest.raises(SignatureError) as info:
        guard.check(SignedBy(key="U" + "A" * 55, ts=NOW, id=None, nonce=None), now=NOW)
    assert info.value.code == ErrorCode.BAD_SIGNATURE


def test_bad_seeds_are_refused() -> None:
    for bad in ("", "SUNOTASEED", "hello"):
        with pytest.raises(ValueError, match="not a valid NKey seed"):
            Signer(bad)


def test_server_keys_may_sign() -> None:
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER).decode()
    signer = Signer(seed)
    assert signer.public_key.startswith("N")
    doc = sign({"hostname": "web1"}, signer, now=NOW)
    assert verify(doc, {signer.public_key}, now=NOW).key == signer.public_key


def test_account_keys_may_not_sign() -> None:
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
    with pytest.raises(ValueError, match="user"):
        Signer(seed)


def test_a_signature_has_one_spelling(deployer: tuple[str, str]) -> None:
    # a lenient decoder would skip stray characters or accept padding, and
    # the same signature would verify under several spellings
    seed, public = deployer
    doc = sign(_request(), seed, now=NOW)
    good = doc[SIG_FIELD]["sig"]
    for spelling in (good + "==", good[:40] + "\n" + good[40:], good[:40] + "!" + good[40:]):
        doc[SIG_FIELD]["sig"] = spelling
        _refused(ErrorCode.BAD_SIGNATURE, doc, {public}, now=NOW)
    doc[SIG_FIELD]["sig"] = good
    verify(doc, {public}, now=NOW)


def test_random_damage_is_only_ever_refused(deployer: tuple[str, str]) -> None:
    # whatever a forger sends, verify answers with a refusal code, never another error
    import random

    seed, public = deployer
    rng = random.Random(12)
    wire = json.dumps(sign(_request(options={"a": [1, 2]}), seed, now=NOW))
    values: list[Any] = [None, True, 0, -1, 1e308, 10**30, "", "x" * 300, [], {}, [{}], "U" * 56]
    for _ in range(2000):
        doc = json.loads(wire)
        target = doc[SIG_FIELD] if rng.random() < 0.6 else doc
        key = rng.choice([*target.keys(), "extra"])
        if rng.random() < 0.2:
            target.pop(key, None)
        else:
            target[key] = rng.choice(values)
        if doc == json.loads(wire):
            continue  # nothing changed (a missing field removed)
        try:
            verify(doc, {public}, now=NOW)
        except SignatureError as exc:
            assert exc.code in {ErrorCode.UNSIGNED, ErrorCode.BAD_SIGNATURE}, exc.message
        else:
            raise AssertionError(f"damaged message verified: {doc}")
