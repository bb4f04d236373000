"""``hlplay listen`` options: flags and their HLPLAY_LISTEN_* environment twins."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

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
        "HLPLAY_LISTEN_ACCEPT_UNSIGNED": "1",
    }
    result = CliRunner().invoke(cli, ["listen"], env=env)
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.hostname == "web1" and config.tier == "test"  # type: ignore[attr-defined]
    assert config.roles == ("web", "edge")  # type: ignore[attr-defined]
    assert config.nats_urls == ("nats://a:4222", "nats://b:4222")  # type: ignore[attr-defined]
    assert config.timeout == 60.0  # type: ignore[attr-defined]


def test_a_listener_needs_trusted_keys_or_an_explicit_unsigned_choice(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["listen", "--tier", "test", "--hostname", "h1"])
    assert isinstance(result.exception, HlplayError), result.output
    assert "give --trusted-keys FILE" in str(result.exception)
    bad = tmp_path / "test.deployers"
    bad.write_text("not-a-key\n")
    result = CliRunner().invoke(
        cli, ["listen", "--tier", "test", "--hostname", "h1", "--trusted-keys", str(bad)]
    )
    assert isinstance(result.exception, HlplayError), result.output
    assert f"{bad}:1:" in str(result.exception)


def test_bad_names_are_one_line_errors() -> None:
    result = CliRunner().invoke(cli, ["listen", "--tier", "te st", "--hostname", "x"])
    assert isinstance(result.exception, HlplayError)
    assert "--tier 'te st' is not a valid name" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nats-url", "bogus://x"], "--nats-url: invalid NATS URL 'bogus://x'"),
        (["--nats-url", "nats://127.0.0.1:nope"], "invalid NATS URL 'nats://127.0.0.1:nope'"),
        (["--nats-url", "nats://127.0.0.1:70000"], "invalid NATS URL 'nats://127.0.0.1:70000'"),
        (
            ["--nats-url", "ws://a:1", "--nats-url", "nats://b:2"],
            "do not mix websocket (ws://, wss://) and other URLs",
        ),
        # a host subject without <hostname> would reach every host of the tier
        (["--subject-host", "deploy.<tier>"], "--subject-host 'deploy.<tier>': must contain"),
        (
            ["--subject-tier", "deploy.<tier>.<hostname>"],
            "--subject-tier 'deploy.<tier>.<hostname>': cannot contain <hostname>",
        ),
        (["--facts-subject", "f.<Host>"], "unknown placeholder <Host>"),
    ],
)
def test_bad_urls_and_templates_are_refused_before_connecting(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["listen", "--tier", "test", "--hostname", "h1", *args])
    assert isinstance(result.exception, HlplayError), result.output
    assert message in str(result.exception)


def test_a_server_not_there_yet_is_said_once_while_the_listener_waits(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hlplay.cli.main",
            "listen",
            "--tier",
            "test",
            "--hostname",
            "h1",
            "--executor",
            "noop",
            "--state-dir",
            str(tmp_path),
            "--accept-unsigned",
            "--nats-url",
            f"nats://127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the listener says something
        assert f"cannot reach NATS at nats://127.0.0.1:{port} yet" in line, line
        assert proc.poll() is None  # it keeps waiting for the server
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "cannot reach NATS" not in rest and "Traceback" not in rest
