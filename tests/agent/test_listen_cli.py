"""``hlplay listen`` options: flags and their HLPLAY_LISTEN_* environment twins."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hlplay.cli.agent_cmd import listen
from hlplay.cli.main import cli
from hlplay.errors import HlplayError

FLAGS = [
    "--hostname",
    "--tier",
    "--role",
    "--nats-url",
    "--nkey-file",
    "--flake",
    "--profile",
    "--toplevel-attr",
    "--executor",
    "--timeout",
    "--subject-host",
    "--subject-tier",
    "--subject-role",
    "--discover-subject",
    "--facts-subject",
    "--confirm-subject",
    "--state-dir",
    "--units-dir",
    "--disk-path",
    "--progress-interval",
    "--log-level",
]


def test_every_documented_flag_exists_with_an_environment_variable() -> None:
    opts = {o: p for p in listen.params for o in p.opts}
    for flag in FLAGS:
        assert flag in opts, flag
        name = flag[2:].upper().replace("-", "_")
        assert opts[flag].envvar == f"HLPLAY_LISTEN_{name}"


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    async def fake_run(config: object) -> None:
        seen["config"] = config

    monkeypatch.setattr("hlplay.agent.listener.run_listener", fake_run)
    env = {
        "HLPLAY_LISTEN_HOSTNAME": "web1",
        "HLPLAY_LISTEN_TIER": "test",
        "HLPLAY_LISTEN_ROLE": "web edge",
        "HLPLAY_LISTEN_NATS_URL": "nats://a:4222 nats://b:4222",
        "HLPLAY_LISTEN_TIMEOUT": "60",
    }
    result = CliRunner().invoke(cli, ["listen"], env=env)
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.hostname == "web1" and config.tier == "test"  # type: ignore[attr-defined]
    assert config.roles == ("web", "edge")  # type: ignore[attr-defined]
    assert config.nats_urls == ("nats://a:4222", "nats://b:4222")  # type: ignore[attr-defined]
    assert config.timeout == 60.0  # type: ignore[attr-defined]


def test_bad_names_are_one_line_errors() -> None:
    result = CliRunner().invoke(cli, ["listen", "--tier", "te st", "--hostname", "x"])
    assert isinstance(result.exception, HlplayError)
    assert "--tier 'te st' is not a valid name" in str(result.exception)
