"""System operations: flake references, generations, rollback, health checks, the watchdog."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hlplay.deploy.nix import local_runner
from hlplay.nix import flakeref, health, system

# -- flake references (no Nix needed) ------------------------------------------


def test_branch_becomes_ref_and_commit_becomes_rev() -> None:
    assert flakeref.flake_ref("/srv/config", "main") == "git+file:///srv/config?ref=main"
    sha = "a" * 40
    assert flakeref.flake_ref("git+https://example.org/c.git", sha) == (
        f"git+https://example.org/c.git?rev={sha}"
    )
    assert flakeref.flake_ref("github:org/cfg?dir=x", "v1.2") == "github:org/cfg?dir=x&ref=v1.2"


def test_head_leaves_the_flake_unpinned() -> None:
    assert flakeref.flake_ref("/srv/config", "HEAD") == "git+file:///srv/config"


def test_relative_flake_paths_are_anchored() -> None:
    assert flakeref.normalize_flake("cfg", base="/srv") == "git+file:///srv/cfg"


@pytest.mark.parametrize("bad", ["main&rev=x", "a b", "-x", "x#y", "../../etc", "a?b"])
def test_unsafe_revisions_are_refused(bad: str) -> None:
    with pytest.raises(flakeref.FlakeRefError, match="invalid revision"):
        flakeref.flake_ref("/srv/config", bad)


def test_attribute_path_quotes_unusual_host_names() -> None:
    tmpl = "nixosConfigurations.{host}.config.system.build.toplevel"
    assert flakeref.attr_path(tmpl, "web-1") == (
        "nixosConfigurations.web-1.config.system.build.toplevel"
    )
    assert flakeref.attr_path(tmpl, "web.example") == (
        'nixosConfigurations."web.example".config.system.build.toplevel'
    )
    with pytest.raises(flakeref.FlakeRefError):
        flakeref.attr_path(tmpl, 'x"; evil')


def test_local_repo_of_a_flake() -> None:
    assert flakeref.local_repo("git+file:///srv/c?ref=main") == "/srv/c"
    assert flakeref.local_repo("github:org/cfg") is None


# -- parsing -------------------------------------------------------------------


def test_generation_listing_is_parsed_with_the_current_one_marked() -> None:
    text = (
        "system\tsystem-3-link\t1700000300.5\n"
        "system-1-link\t/nix/store/" + "a" * 32 + "-nixos-system-x-1\t1700000100.0\n"
        "system-3-link\t/nix/store/" + "c" * 32 + "-nixos-system-x-3\t1700000300.0\n"
        "system-10-link\t/nix/store/" + "d" * 32 + "-nixos-system-x-10\t1700000400.0\n"
        "other-2-link\t/nix/store/x\t1\n"
    )
    gens = system.parse_generation_listing(text, "system")
    assert [g.number for g in gens] == [1, 3, 10]
    assert [g.number for g in gens if g.current] == [3]
    assert system.previous_of(gens, 3) == gens[0]
    assert system.previous_of(gens, 1) is None


def test_nix_env_generation_listing_is_parsed() -> None:
    text = "   1   2024-01-02 03:04:05   \n   2   2024-01-03 03:04:05   (current)\n"
    assert [(n, c) for n, _, c in system.parse_nix_env_generations(text)] == [
        (1, False),
        (2, True),
    ]


def test_nix_build_json_gives_the_out_path() -> None:
    path = "/nix/store/" + "b" * 32 + "-nixos-system-web1-1"
    out = system.parse_build_json(
        f'[{{"drvPath":"/nix/store/x.drv","outputs":{{"out":"{path}"}}}}]'
    )
    assert out == path
    with pytest.raises(system.NixOpError):
        system.parse_build_json("not json")


def test_profiles_must_be_plain_absolute_paths() -> None:
    for bad in ("relative/system", "/a/../b", "/a/b\n", "/a/"):
        with pytest.raises(system.NixOpError):
            system.check_profile(bad)


# -- health checks (local runner, real sockets) -----------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"tcp": "nohost"}, "HOST:PORT"),
        ({"http": "ftp://x/"}, "http"),
        ({"unit_active": "a b"}, "unit"),
        ({"path_exists": "relative"}, "absolute"),
        ({"tcp": "h:1", "http": "http://h/"}, "exactly one"),
        ({"shell": "rm -rf /"}, "unknown key 'shell'"),
        ({"tcp": "h:1", "retries": -1}, "retries"),
        ({"tcp": "h:1", "from": "elsewhere"}, "from"),
    ],
)
def test_malformed_health_checks_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(health.HealthSpecError, match=message):
        health.parse_checks([spec])


async def _http_server(status: int) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_health_checks_pass_and_fail_as_the_host_is(tmp_path: Path) -> None:
    ok_srv, ok_port = await _http_server(200)
    bad_srv, bad_port = await _http_server(503)
    units = tmp_path / "units"
    units.mkdir()
    (units / "nginx.service").write_text("active\n")
    (units / "db.service").write_text("failed\n")
    (tmp_path / "present").touch()
    checks = health.parse_checks(
        [
            {"tcp": f"127.0.0.1:{ok_port}"},
            {"http": f"http://127.0.0.1:{ok_port}/health"},
            {"path_exists": str(tmp_path / "present")},
            {"unit_active": "nginx.service"},
            {"http": f"http://127.0.0.1:{bad_port}/", "retries": 0},
            {"unit_active": "db.service", "retries": 0},
            {"unit_active": "gone.service", "retries": 0},
            {"path_exists": str(tmp_path / "absent"), "retries": 0},
        ]
    )
    async with ok_srv, bad_srv:
        report = await health.run_checks(local_runner, checks, units_dir=str(units))
    assert [o.ok for o in report.outcomes] == [True, True, True, True, False, False, False, False]
    assert not report.ok
    assert "503" in report.outcomes[4].message
    assert "db.service: failed" in report.outcomes[5].message
    assert "http http://127.0.0.1" in report.summary()


async def test_a_closed_port_fails_after_its_retries() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    check = health.parse_check({"tcp": f"127.0.0.1:{port}", "retries": 1, "delay": 0.05})
    outcome = await health.run_check(local_runner, check)
    assert not outcome.ok and outcome.tries == 2


# -- profiles, rollback and the watchdog (real Nix) ----------------------------


@pytest.fixture
def two_systems(nix_flake):  # type: ignore[no-untyped-def]
    """Two builds of host web1 (generation 1 = v1, 2 = v2) in its profile."""
    nix_flake.set_host("web1", {"hello": "1.0"}, services=["a.service"])
    rev1 = nix_flake.commit()
    p1 = nix_flake.build("web1", rev1)
    nix_flake.set_host("web1", {"hello": "2.0"}, services=["b.service"])
    rev2 = nix_flake.commit()
    p2 = nix_flake.build("web1", rev2)
    return nix_flake, p1, p2


async def test_generations_and_rollback(two_systems) -> None:  # type: ignore[no-untyped-def]
    flake, p1, p2 = two_systems
    profile = flake.profile("web1")
    assert await system.list_generations(local_runner, profile) == []
    await system.set_profile(local_runner, profile, p1)
    await system.set_profile(local_runner, profile, p2)
    gens = await system.list_generations(local_runner, profile)
    assert [(g.number, g.path, g.current) for g in gens] == [(1, p1, False), (2, p2, True)]
    assert abs(gens[1].time - time.time()) < 60

    out = await system.roll_back(local_runner, profile, to=gens[0], failed=2, action="switch")
    assert out.ok, out.message
    assert flake.current_generation("web1") == 1
    assert flake.generations("web1") == [1]  # the failed generation is gone, as deploy-rs does
    assert flake.activations("web1") == [("switch", p1)]
    assert (flake.units_dir("web1") / "a.service").read_text() == "active\n"


async def test_rollback_without_a_previous_generation_says_so(nix_flake) -> None:  # type: ignore[no-untyped-def]
    out = await system.roll_back(local_runner, nix_flake.profile("x"), to=None)
    assert not out.ok and "no previous generation" in out.message


async def _wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_watchdog_rolls_back_without_confirmation(two_systems) -> None:  # type: ignore[no-untyped-def]
    flake, p1, p2 = two_systems
    profile = flake.profile("web1")
    await system.set_profile(local_runner, profile, p1)
    await system.set_profile(local_runner, profile, p2)
    gens = await system.list_generations(local_runner, profile)
    canary = system.canary_path(profile, flake.state_dir("web1"), "req1")
    start = time.monotonic()
    await system.arm_watchdog(
        local_runner, canary=canary, profile=profile, timeout=1,
        old=gens[0], new=gens[1], action="switch",
    )  # fmt: skip
    assert time.monotonic() - start < 2, "arming must not wait for the watchdog"
    assert Path(canary).exists()
    await _wait_for(lambda: flake.current_generation("web1") == 1 and flake.activations("web1"))
    await _wait_for(lambda: "rollback: ok" in Path(canary + ".expired").read_text())
    assert flake.activations("web1") == [("switch", p1)]
    late = await system.confirm_canary(local_runner, canary)
    assert not late.confirmed and late.rolled_back and late.rollback_ok


async def test_watchdog_stands_down_when_confirmed(two_systems) -> None:  # type: ignore[no-untyped-def]
    flake, p1, p2 = two_systems
    profile = flake.profile("web1")
    await system.set_profile(local_runner, profile, p1)
    await system.set_profile(local_runner, profile, p2)
    gens = await system.list_generations(local_runner, profile)
    canary = system.canary_path(profile, flake.state_dir("web1"), "req2")
    await system.arm_watchdog(
        local_runner, canary=canary, profile=profile, timeout=1,
        old=gens[0], new=gens[1], action="switch",
    )  # fmt: skip
    assert (await system.confirm_canary(local_runner, canary)).confirmed
    await _wait_for(lambda: not Path(canary + ".confirmed").exists())  # the watchdog exited
    await asyncio.sleep(1.2)
    assert flake.current_generation("web1") == 2
    assert flake.activations("web1") == []


async def test_a_claimed_canary_is_rolled_back_by_the_claimer(two_systems) -> None:  # type: ignore[no-untyped-def]
    flake, p1, p2 = two_systems
    profile = flake.profile("web1")
    await system.set_profile(local_runner, profile, p1)
    await system.set_profile(local_runner, profile, p2)
    gens = await system.list_generations(local_runner, profile)
    canary = system.canary_path(profile, flake.state_dir("web1"), "req3")
    await system.arm_watchdog(
        local_runner, canary=canary, profile=profile, timeout=30,
        old=gens[0], new=gens[1], action="switch",
    )  # fmt: skip
    claim = await system.claim_canary(local_runner, canary)
    assert claim.claimed and (claim.old, claim.new, claim.action) == (1, 2, "switch")
    again = await system.claim_canary(local_runner, canary)
    assert not again.claimed and "no confirmation is pending" in again.message
