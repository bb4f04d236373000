"""No name or revision the validators accept can carry a control character.

The same validators serve the CLI, MCP, the inventory loader and the
listener; a trailing newline (``main\\n``) once reached ``nix build`` because
``$`` matches before a final newline.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlplay.errors import HlplayError, Location
from hlplay.inventory.names import check_host_name
from hlplay.protocol.messages import (
    ProtocolError,
    is_reply_subject,
    is_request_id,
    validate_revision,
)
from hlplay.subjectrules import is_subject_token

CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\u2029"]
LOC = Location("inventory.yml", 1, 1)

#: Text around one control character: before, after or inside a plausible name.
with_control = st.builds(
    lambda a, c, b: a + c + b,
    st.text(alphabet="abcdefgh0123456789-._/", max_size=12),
    st.sampled_from(CONTROL),
    st.text(alphabet="abcdefgh0123456789-._/", max_size=12),
)


def accepts_revision(text: str) -> bool:
    try:
        validate_revision(text)
    except ProtocolError:
        return False
    return True


def accepts_host(text: str) -> bool:
    try:
        check_host_name(text, LOC)
    except HlplayError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(with_control)
def test_nothing_with_a_control_character_is_accepted(text: str) -> None:
    assert not accepts_revision(text), repr(text)
    assert not accepts_host(text), repr(text)
    assert not is_subject_token(text), repr(text)
    assert not is_reply_subject(text), repr(text)
    assert not is_request_id(text), repr(text)


@pytest.mark.parametrize("text", ["main\n", "main\r\n", "\nmain", "ma\x00in", "main\t"])
def test_a_trailing_or_embedded_newline_is_refused_everywhere(text: str) -> None:
    assert accepts_revision("main") and accepts_host("web1") and is_subject_token("web1")
    assert not accepts_revision(text)
    assert not accepts_host(text.replace("main", "web1"))
    assert not is_subject_token(text)
    assert not is_reply_subject(f"_INBOX.{text}")


def test_the_cli_and_mcp_revision_check_refuses_main_newline() -> None:
    import asyncio

    from hlplay.errors import OptionsError
    from hlplay.fleetops import resolve_revision

    with pytest.raises(OptionsError, match="revision"):
        asyncio.run(resolve_revision(object(), "main\n"))
