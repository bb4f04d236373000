"""The ``protocol`` host key and the ``hlplay.nats.reply_prefix`` setting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hlplay.errors import InventoryError
from hlplay.inventory.loader import load_inventory


def test_protocol_defaults_to_hlplay_and_may_be_homelab_deploy(
    tree: Callable[..., Path],
) -> None:
    root = tree(
        {
            "hosts.yml": """
            hosts:
              new1: {tier: test}
              old1: {tier: test, protocol: homelab-deploy}
              old2: {tier: test}
            groups:
              legacy:
                hosts: [old2]
                vars: {hlplay_protocol: homelab-deploy}
            """
        }
    )
    inv = load_inventory(root)
    assert inv.hosts["new1"].protocol == "hlplay"
    assert not inv.hosts["new1"].homelab_deploy
    assert inv.hosts["old1"].protocol == "homelab-deploy"
    assert inv.hosts["old1"].homelab_deploy
    assert inv.hosts["old2"].protocol == "homelab-deploy"


def test_an_unknown_protocol_is_an_error_with_its_place(tree: Callable[..., Path]) -> None:
    root = tree({"hosts.yml": "hosts:\n  h1:\n    tier: test\n    protocol: homelab\n"})
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    text = str(info.value)
    assert text.startswith(f"{root}/hosts.yml:4:")
    assert "'protocol' of host 'h1' must be one of hlplay, homelab-deploy, got 'homelab'" in text
    assert "did you mean" in text.lower()


def test_reply_prefix_setting(tree: Callable[..., Path]) -> None:
    root = tree(
        {"hosts.yml": "hlplay: {nats: {reply_prefix: deploy.responses}}\nhosts: {h1: {}}\n"}
    )
    assert load_inventory(root).settings.nats.reply_prefix == "deploy.responses"
    default = tree({"hosts.yml": "hosts: {h1: {}}\n"}, name="plain")
    assert load_inventory(default).settings.nats.reply_prefix is None


@pytest.mark.parametrize("bad", ["deploy.responses.>", "deploy..responses", "deploy.*"])
def test_a_reply_prefix_must_be_a_plain_subject(tree: Callable[..., Path], bad: str) -> None:
    root = tree(
        {"hosts.yml": f"hlplay:\n  nats:\n    reply_prefix: '{bad}'\nhosts: {{h1: {{}}}}\n"}
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    assert str(info.value).startswith(f"{root}/hosts.yml:3:")
    assert "'hlplay.nats.reply_prefix'" in str(info.value)
