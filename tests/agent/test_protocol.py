"""The wire protocol: what a request may carry, and what a response looks like."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlplay.inventory.model import SubjectTemplates
from hlplay.protocol.messages import (
    DeployRequest,
    DeployResponse,
    ErrorCode,
    ProtocolError,
    salvage_reply,
    validate_revision,
)
from hlplay.protocol.subjects import (
    SubjectError,
    covers,
    expand,
    listener_subjects,
    tier_patterns,
)


@pytest.mark.parametrize(
    "revision",
    ["main", "v1.2.3", "release/2024-05", "a" * 40, "feature+x@y", "refs/heads/main"],
)
def test_branches_tags_and_commits_are_valid_revisions(revision: str) -> None:
    assert validate_revision(revision) == revision


@pytest.mark.parametrize(
    "revision",
    ["", "-rf", "--upgrade", "a b", "main;reboot", "$(id)", "a/../b", "x" * 201, "ä", "a\nb"],
)
def test_unsafe_revisions_are_refused(revision: str) -> None:
    with pytest.raises(ProtocolError) as err:
        validate_revision(revision)
    assert err.value.code is ErrorCode.INVALID_REVISION


@given(st.text(max_size=250))
def test_a_valid_revision_is_always_a_safe_argument(text: str) -> None:
    try:
        validate_revision(text)
    except ProtocolError:
        return
    assert not text.startswith("-")
    assert all(c.isascii() and (c.isalnum() or c in "._/+@-") for c in text)
    assert ".." not in text and 0 < len(text) <= 200


def test_a_homelab_deploy_request_parses_and_round_trips() -> None:
    raw = b'{"action": "switch", "revision": "main", "reply_to": "deploy.responses.abc-123"}'
    req = DeployRequest.parse(raw)
    assert (req.action, req.revision, req.reply_to, req.id) == (
        "switch",
        "main",
        "deploy.responses.abc-123",
        None,
    )
    assert json.loads(req.to_json()) == json.loads(raw)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{", ErrorCode.INVALID_JSON),
        (b"[]", ErrorCode.INVALID_REQUEST),
        (b'{"action": "reboot", "revision": "main"}', ErrorCode.INVALID_ACTION),
        (b'{"action": "switch"}', ErrorCode.INVALID_REVISION),
        (b'{"action": "switch", "revision": "m", "reply_to": "a.*"}', ErrorCode.INVALID_REPLY_TO),
        (b'{"action": "switch", "revision": "m", "reply_to": "a..b"}', ErrorCode.INVALID_REPLY_TO),
        (b'{"action": "switch", "revision": "m", "id": 5}', ErrorCode.INVALID_REQUEST),
        (b'{"action": "switch", "revision": "m", "options": []}', ErrorCode.INVALID_REQUEST),
        (
            b'{"hostname": "web1", "status": "completed", "action": "switch", "revision": "m"}',
            ErrorCode.INVALID_REQUEST,
        ),
        (b"[" * 100000 + b"]" * 100000, ErrorCode.INVALID_REQUEST),  # too large
        (b"[" * 30000 + b"]" * 30000, ErrorCode.INVALID_JSON),  # too deep
    ],
)
def test_bad_requests_carry_the_documented_code(payload: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as err:
        DeployRequest.parse(payload)
    assert err.value.code is code


def test_a_rejection_salvages_only_sound_reply_subjects_and_ids() -> None:
    assert salvage_reply(b'{"reply_to": "_INBOX.x", "id": "r1", "action": 3}') == (
        "_INBOX.x",
        "r1",
    )
    assert salvage_reply(b'{"reply_to": "a b", "id": 7}') == (None, None)
    assert salvage_reply(b"junk") == (None, None)


def test_responses_keep_the_seed_fields_and_carry_extensions() -> None:
    resp = DeployResponse("web1", "completed", id="r1", extra={"duration": 1.5, "generation": 7})
    doc = json.loads(resp.to_json())
    assert doc["hostname"] == "web1" and doc["status"] == "completed"
    assert doc["error"] is None and doc["message"] == ""
    back = DeployResponse.parse(resp.to_json())
    assert back.final and back.id == "r1" and back.extra["generation"] == 7
    progress = DeployResponse("web1", "started", extra={"progress": ["a", "b"]})
    assert DeployResponse.parse(progress.to_json()).progress_lines == ["a", "b"]


def test_listener_subjects_follow_the_templates() -> None:
    subjects = listener_subjects(
        SubjectTemplates(), hostname="web1", tier="test", roles=("web", "edge")
    )
    assert subjects.deploy == (
        "deploy.test.web1",
        "deploy.test.all",
        "deploy.test.role.web",
        "deploy.test.role.edge",
    )
    assert subjects.discover == "deploy.discover"
    assert subjects.facts == "hlplay.facts.test.web1"
    assert subjects.confirm == "hlplay.confirm.test.web1"
    custom = SubjectTemplates(host="nixos.<hostname>", tier="nixos.<tier>")
    assert listener_subjects(custom, hostname="a", tier="t").deploy == ("nixos.a", "nixos.t")


def test_templates_with_unknown_placeholders_are_refused() -> None:
    with pytest.raises(SubjectError, match="unknown placeholder <host>"):
        expand("deploy.<tier>.<host>", tier="test", hostname="web1")


def test_tier_patterns_cover_exactly_the_tier() -> None:
    patterns = tier_patterns(SubjectTemplates(), "test")
    assert patterns == [
        "deploy.test.*",
        "deploy.test.role.*",
        "hlplay.facts.test.*",
        "hlplay.confirm.test.*",
    ]
    assert covers("deploy.test.>", "deploy.test.role.*")
    assert not covers("deploy.test.*", "deploy.prod.web1")
