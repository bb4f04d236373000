"""Executors: the argv nixos-rebuild gets, the noop executor, and host facts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from hlplay.agent.executor import ExecContext, load_executor
from hlplay.agent.facts import collect_facts
from hlplay.agent.nixos_rebuild import NixosRebuildExecutor, flake_ref, profile_generation
from hlplay.agent.noop import NoopExecutor
from hlplay.protocol.messages import DeployRequest
from hlplay.transports.base import CommandResult


class Recorder:
    """A command runner that records argv and answers with a fixed result."""

    def __init__(self, rc: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.rc, self.stdout, self.stderr = rc, stdout, stderr

    async def __call__(self, argv: Sequence[str], timeout: float | None) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(argv=list(argv), rc=self.rc, stdout=self.stdout, stderr=self.stderr)


def ctx_for(runner: Recorder, tmp_path: Path, **kw: object) -> ExecContext:
    return ExecContext(
        hostname="web1",
        tier="test",
        roles=("web",),
        runner=runner,
        flake="git+https://git.example/infra.git",
        profile=str(tmp_path / "profiles" / "system"),
        state_dir=str(tmp_path / "state"),
        **kw,  # type: ignore[arg-type]
    )


def test_flake_refs_use_ref_for_branches_and_rev_for_commits() -> None:
    assert flake_ref("git+https://g/x.git", "main", "web1") == "git+https://g/x.git?ref=main#web1"
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert flake_ref("git+https://g/x.git", commit, "h") == f"git+https://g/x.git?rev={commit}#h"
    assert (
        flake_ref("git+https://g/x.git?dir=os", "v1", "h") == "git+https://g/x.git?dir=os&ref=v1#h"
    )
    assert flake_ref("git+https://g/x.git", "a+b@c", "h").endswith("?ref=a%2Bb%40c#h")


@pytest.mark.parametrize("action", ["switch", "boot", "test", "dry-activate", "build"])
async def test_nixos_rebuild_runs_one_argv_never_a_shell(action: str, tmp_path: Path) -> None:
    runner = Recorder()
    result = await NixosRebuildExecutor().execute(
        DeployRequest(action, "release/1.0"), ctx_for(runner, tmp_path)
    )
    assert result.ok, result
    assert runner.calls == [
        [
            "nixos-rebuild",
            action,
            "--flake",
            "git+https://git.example/infra.git?ref=release/1.0#web1",
        ]
    ]


async def test_nixos_rebuild_failure_names_the_phase_and_tail(tmp_path: Path) -> None:
    runner = Recorder(rc=1, stderr="building the system configuration...\nerror: builder failed\n")
    result = await NixosRebuildExecutor().execute(
        DeployRequest("switch", "main"), ctx_for(runner, tmp_path)
    )
    assert not result.ok
    assert result.error == "build_failed"
    assert "error: builder failed" in result.message
    runner = Recorder(rc=4, stdout="activating the configuration...\n")
    result = await NixosRebuildExecutor().execute(
        DeployRequest("switch", "main"), ctx_for(runner, tmp_path)
    )
    assert result.error == "activation_failed"


async def test_nixos_rebuild_rollback_and_unsupported_actions(tmp_path: Path) -> None:
    runner = Recorder()
    await NixosRebuildExecutor().execute(
        DeployRequest("rollback", "main"), ctx_for(runner, tmp_path)
    )
    assert runner.calls == [["nixos-rebuild", "switch", "--rollback"]]
    result = await NixosRebuildExecutor().execute(
        DeployRequest("diff", "main"), ctx_for(runner, tmp_path)
    )
    assert not result.ok and result.error == "not_supported"


async def test_current_generation_is_read_from_the_profile_links(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    store = tmp_path / "store-system-42"
    store.mkdir()
    os.symlink(store, profiles / "system-42-link")
    os.symlink("system-42-link", profiles / "system")
    info = profile_generation(str(profiles / "system"))
    assert info["generation"] == 42
    assert info["store_path"] == str(store)
    runner = Recorder()
    ctx = ctx_for(runner, tmp_path)
    result = await NixosRebuildExecutor().execute(DeployRequest("switch", "v2"), ctx)
    assert result.data["generation"] == 42
    assert (await NixosRebuildExecutor().current(ctx))["revision"] == "v2"


async def test_noop_executor_progress_failure_and_generations(tmp_path: Path) -> None:
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    ctx = ctx_for(Recorder(), tmp_path, progress=progress)
    executor = load_executor("noop")
    assert isinstance(executor, NoopExecutor)
    ok = await executor.execute(DeployRequest("switch", "main"), ctx)
    assert ok.ok and ok.data["generation"] == 2 and len(lines) == 3
    failed = await executor.execute(DeployRequest("switch", "main", options={"fail": True}), ctx)
    assert not failed.ok and failed.error == "exec_failed"
    bad = await executor.execute(DeployRequest("switch", "main", options={"sleep": "x"}), ctx)
    assert bad.error == "invalid_options"
    # state survives a restart of the listener
    assert (await NoopExecutor().current(ctx))["generation"] == 2


async def test_facts_of_this_machine(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "a.service").write_text("failed")
    ctx = ctx_for(Recorder(), tmp_path)
    facts = await collect_facts(
        ctx, NoopExecutor(), units_dir=str(units), disk_paths=["/", "/nonexistent-disk"]
    )
    assert facts["failed_units"] == ["a.service"]
    assert facts["memory"]["total"] >= facts["memory"]["available"] > 0
    assert facts["disk"][0]["total"] > 0
    assert "error" in facts["disk"][1]
    assert facts["generation"] == 1
