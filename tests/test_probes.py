"""The probe library the deploy's health gate and fleet health share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from hlplay import probes
from hlplay.probes import Probe, ProbeSpecError, probe, probe_argv, read_result, validate_target
from hlplay.proc import CommandResult, run_argv


async def local(argv: Sequence[str], timeout: float | None) -> CommandResult:
    return await run_argv(argv, timeout=timeout)


class Recording:
    """A runner that answers with a fixed result and keeps what it was asked."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        self.calls: list[tuple[list[str], float | None]] = []

    async def __call__(self, argv: Sequence[str], timeout: float | None) -> CommandResult:
        self.calls.append((list(argv), timeout))
        return self.result


@pytest.mark.parametrize(
    "kind, target, message",
    [
        ("unit_active", "-rf /", "invalid unit name"),
        ("unit_active", "a b", "invalid unit name"),
        ("tcp", "nohost", "HOST:PORT"),
        ("tcp", "h:99999", "invalid address"),
        ("http", "ftp://x/", "http:// or https://"),
        ("http", "http://h/a b", "whitespace"),
        ("path_exists", "relative", "absolute path"),
        ("shell", "true", "unknown probe"),
    ],
)
def test_unsafe_targets_are_refused(kind: str, target: str, message: str) -> None:
    with pytest.raises(ProbeSpecError, match=message):
        validate_target(kind, target)


def test_where_prefixes_the_message_only_when_given() -> None:
    with pytest.raises(ProbeSpecError, match=r"^health check #2: invalid unit name"):
        validate_target("unit_active", "-x", "health check #2")
    with pytest.raises(ProbeSpecError, match=r"^invalid unit name"):
        validate_target("unit_active", "-x")


def test_targets_reach_the_scripts_as_parameters_never_as_code() -> None:
    argv = probe_argv(Probe("http", "http://127.0.0.1:8080/h?x=1", timeout=3, status=204))
    assert argv[:2] == ["bash", "-c"] and argv[2] == probes.HTTP_SCRIPT
    assert argv[4:] == ["http://127.0.0.1:8080/h?x=1", "127.0.0.1", "8080", "/h?x=1", "3", "204"]
    assert probe_argv(Probe("tcp", "[::1]:22"))[4:] == ["::1", "22"]
    assert probe_argv(Probe("unit_active", "nginx.service")) == [
        "systemctl", "is-active", "--", "nginx.service",
    ]  # fmt: skip
    assert probe_argv(Probe("unit_active", "web"), "/run/units")[-2:] == ["/run/units", "web"]
    assert probe_argv(Probe("path_exists", "/etc/x")) == ["test", "-e", "/etc/x"]


def test_a_result_says_why_in_one_line() -> None:
    assert read_result(CommandResult(["x"], 0), 5).ok
    bad = read_result(CommandResult(["x"], 3, stdout="a\nweb: failed\n"), 5)
    assert not bad.ok and bad.message == "web: failed"
    assert read_result(CommandResult(["x"], 1, stderr="refused"), 5).message == "refused"
    assert read_result(CommandResult(["x"], 7), 5).message == "exit 7"
    timed = read_result(CommandResult(["x"], 124, stdout="partial", timed_out=True), 2.5)
    assert timed.message == "timed out after 2.5s"


async def test_the_runner_gets_the_probes_timeout_and_a_grace() -> None:
    runner = Recording(CommandResult(["x"], 0))
    assert (await probe(runner, Probe("path_exists", "/x", timeout=4))).ok
    assert runner.calls[-1][1] == 4 + probes.GRACE
    await probe(runner, Probe("path_exists", "/x", timeout=4), run_timeout=4)
    assert runner.calls[-1][1] == 4


async def test_probes_run_for_real_through_a_local_runner(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "web.service").write_text("active\n")
    (units / "db.service").write_text("failed\n")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert (await probe(local, Probe("tcp", f"127.0.0.1:{port}"))).ok
    up = await probe(local, Probe("unit_active", "web.service"), units_dir=str(units))
    down = await probe(local, Probe("unit_active", "db.service"), units_dir=str(units))
    gone = await probe(local, Probe("unit_active", "gone.service"), units_dir=str(units))
    assert up.ok and not down.ok and not gone.ok
    assert down.message == "db.service: failed" and gone.message == "gone.service: not running"
    assert (await probe(local, Probe("path_exists", str(units)))).ok
    assert not (await probe(local, Probe("path_exists", str(tmp_path / "absent")))).ok
