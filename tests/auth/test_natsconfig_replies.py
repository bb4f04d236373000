"""Reply subjects in the generated authorization config (homelab-deploy's included)."""

from __future__ import annotations

import pytest

from fixtures.nats import make_inventory
from hlplay.auth.keys import generate
from hlplay.auth.natsconfig import NatsConfigError, plan_users


def keys_for(*names: str) -> dict[str, str]:
    return {name: generate()[1] for name in names}


def test_deployers_read_and_listeners_write_deploy_responses() -> None:
    inv = make_inventory([("h1", "test", ("web",))])
    users = {u.name: u for u in plan_users(inv, keys=keys_for("h1", "admin", "deployer-test"))}
    assert "deploy.responses.>" in users["h1"].publish
    assert "deploy.responses.>" in users["admin"].subscribe
    assert "deploy.responses.>" in users["deployer-test"].subscribe
    assert not users["h1"].allow_responses


def test_a_tier_whose_subjects_are_reply_subjects_is_refused() -> None:
    inv = make_inventory([("h1", "responses", ())])
    with pytest.raises(NatsConfigError, match=r"deploy\.responses\.h1 lies among the reply"):
        plan_users(inv, keys=keys_for("h1", "admin"))
