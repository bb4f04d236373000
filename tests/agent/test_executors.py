"""Executors: the default pipeline, the noop executor, and host facts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from hlplay.deploy.contract import ExecContext, load_executor
from hlplay.deploy.facts import collect_facts
from hlplay.deploy.noop import NoopExecutor
from hlplay.proc import run_argv
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


async def local_runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
    return await run_argv(argv, timeout=timeout)


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
    # facts are read with commands: this machine's, through a runner of local ones
    ctx = dataclasses.replace(ctx_for(Recorder(), tmp_path), runner=local_runner)
    facts = await collect_facts(
        ctx, NoopExecutor(), units_dir=str(units), disk_paths=["/", "/nonexistent-disk"]
    )
    assert facts["failed_units"] == ["a.service"]
    assert facts["memory"]["total"] >= facts["memory"]["available"] > 0
    assert facts["disk"][0]["total"] > 0
    assert "error" in facts["disk"][1]
    assert facts["generation"] == 1


def test_every_host_runs_the_nix_pipeline_unless_told_otherwise() -> None:
    from hlplay.agent.listener import ListenerConfig
    from hlplay.deploy.contract import DEFAULT_EXECUTOR, EXECUTORS

    assert DEFAULT_EXECUTOR == "nix"
    assert set(EXECUTORS) == {"nix", "noop"}
    assert ListenerConfig(hostname="h", tier="t").executor == "nix"
    assert load_executor(DEFAULT_EXECUTOR).name == "nix"
