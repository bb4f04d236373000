"""The Nix executor against real Nix: build, diff, activate, health gate, magic rollback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hlplay.deploy.nix import NixExecutor
from hlplay.protocol.messages import DeployRequest

ex = NixExecutor()


def req(action: str, revision: str, **options: Any) -> DeployRequest:
    return DeployRequest(action=action, revision=revision, id="r1", options=options)


@pytest.fixture
def web1(nix_flake):  # type: ignore[no-untyped-def]
    """Host web1 at revision 1 (hello 1.0, openssl) and revision 2 (hello 1.1, curl)."""
    nix_flake.set_host(
        "web1", {"hello": "1.0", "openssl": "3.0.13"}, selected=["hello"], services=["web"]
    )
    rev1 = nix_flake.commit("v1")
    nix_flake.set_host(
        "web1", {"hello": "1.1", "curl": "8.0"}, selected=["hello", "curl"], services=["web"]
    )
    rev2 = nix_flake.commit("v2")
    return nix_flake, rev1, rev2


async def test_switch_makes_a_new_generation_and_records_the_revision(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    first = await ex.execute(req("switch", rev1), ctx)
    assert first.ok, first.message
    assert first.data["generation"] == 1 and first.data["changed"]
    second = await ex.execute(req("switch", rev2), ctx)
    assert second.ok, second.message
    assert (second.data["old_generation"], second.data["generation"]) == (1, 2)
    assert flake.generations("web1") == [1, 2]
    paths = [first.data["path"], second.data["path"]]
    assert flake.activations("web1") == [("switch", p) for p in paths]
    assert "hello  1.0 -> 1.1" in second.data["diff_text"]
    cur = await ex.current(ctx)
    assert (cur["generation"], cur["revision"], cur["path"]) == (2, rev2, second.data["path"])
    assert cur["age"] < 60


async def test_an_unchanged_host_is_not_activated(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    again = await ex.execute(req("switch", rev1, confirm_timeout=30), ctx)
    assert again.ok and again.data["changed"] is False
    assert len(flake.activations("web1")) == 1
    assert flake.generations("web1") == [1]


async def test_a_failing_activation_rolls_back_to_the_previous_generation(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    ctx = flake.context("web1")
    good = await ex.execute(req("switch", rev1), ctx)
    flake.set_host("web1", {"hello": "9.9"}, fail_activation=True)
    bad_rev = flake.commit("broken")
    bad = await ex.execute(req("switch", bad_rev), ctx)
    assert not bad.ok
    assert bad.error is not None and bad.error.value == "activation_failed"
    assert "exit 1" in bad.message and "rolled back to generation 1" in bad.message
    assert bad.data["rollback"]["ok"] and bad.data["generation"] == 1
    assert flake.current_generation("web1") == 1
    assert flake.current_path("web1") == good.data["path"]
    assert [a for a, _ in flake.activations("web1")] == ["switch", "switch", "switch"]
    assert flake.activations("web1")[-1] == ("switch", good.data["path"])
    assert (await ex.current(ctx))["revision"] == rev1


async def test_a_failing_rollback_is_reported_too(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    flake.fail_marker("web1")
    bad = await ex.execute(req("switch", rev2), ctx)
    assert not bad.ok and "rollback incomplete" in bad.message
    assert bad.data["rollback"]["ok"] is False


async def test_a_failing_health_gate_rolls_back(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    flake.set_host("web1", {"hello": "2.0"}, services=["web", "db"], failed_services=["db"])
    rev = flake.commit("db fails to start")
    checks = [{"unit_active": "web", "retries": 0}, {"unit_active": "db", "retries": 0}]
    res = await ex.execute(req("switch", rev, health=checks), ctx)
    assert not res.ok and res.error is not None and res.error.value == "health_failed"
    assert "unit_active db failed" in res.message and "rolled back to generation 1" in res.message
    assert [h["ok"] for h in res.data["health"]] == [True, False]
    assert flake.current_generation("web1") == 1
    assert not (flake.units_dir("web1") / "db").exists()  # the old system runs no db


async def test_health_gate_passing_keeps_the_new_system(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, health=[{"unit_active": "web"}]), ctx)
    assert res.ok, res.message
    assert flake.current_generation("web1") == 2


async def test_a_rejected_activation_rolls_back_at_once(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=600), ctx)
    assert res.ok and res.data["awaiting_confirm"] is True
    rejected = await ex.reject("r1", ctx)
    assert not rejected.ok and rejected.error is not None
    assert rejected.error.value == "rolled_back" and rejected.data["rolled_back"] is True
    assert "rolled back to generation 1" in rejected.message
    assert flake.current_generation("web1") == 1


async def test_a_confirmed_activation_stays(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=1), ctx)
    assert res.ok and res.data["awaiting_confirm"] is True
    confirmed = await ex.confirm("r1", ctx)
    assert confirmed.ok and confirmed.data["confirmed"] is True
    await asyncio.sleep(2.5)  # past the window: the watchdog stood down
    assert flake.current_generation("web1") == 2


async def test_canary_mode_without_confirmation_rolls_back_by_itself(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")  # no waiter: the executor arms a canary
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=1), ctx)
    assert res.ok and res.data["awaiting_confirm"] is True
    assert flake.current_generation("web1") == 2
    deadline = time.monotonic() + 10
    while flake.current_generation("web1") != 1 or len(flake.activations("web1")) < 3:
        assert time.monotonic() < deadline, "the watchdog did not roll back"
        await asyncio.sleep(0.1)
    late = await ex.confirm("r1", ctx)
    assert not late.ok and late.error is not None and late.error.value == "confirm_timeout"
    assert late.data["rolled_back"] is True


async def test_canary_mode_confirmed_in_time_keeps_the_system(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("switch", rev2, confirm_timeout=2), ctx)
    confirmed = await ex.confirm("r1", ctx)
    assert confirmed.ok and confirmed.data["generation"] == 2
    await asyncio.sleep(2.5)
    assert flake.current_generation("web1") == 2
    assert flake.activations("web1")[-1] == ("switch", res.data["path"])


async def test_canary_rejected_rolls_back_at_once(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    first = await ex.execute(req("switch", rev1), ctx)
    assert (await ex.execute(req("switch", rev2, confirm_timeout=60), ctx)).ok
    out = await ex.reject("r1", ctx)
    assert out.data["rolled_back"] is True and out.data["generation"] == 1
    assert flake.current_path("web1") == first.data["path"]


async def test_diff_reports_changes_and_activates_nothing(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    res = await ex.execute(req("diff", rev2), ctx)
    assert res.ok and res.data["changed"] is True
    text = res.data["diff_text"]
    assert "[U*]" in text and "hello" in text and "1.0 -> 1.1" in text
    assert "curl" in text and "openssl" in text
    assert res.data["diff"]["schema"].startswith("hlplay.closure-diff/")
    assert flake.generations("web1") == [1]
    assert len(flake.activations("web1")) == 1
    same = await ex.execute(req("diff", rev1), ctx)
    assert same.ok and same.data["changed"] is False
    assert "No version or selection state changes" in same.data["diff_text"]


async def test_boot_test_and_dry_activate(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    dry = await ex.execute(req("dry-activate", rev2), ctx)
    assert dry.ok and flake.generations("web1") == [1]
    t = await ex.execute(req("test", rev2), ctx)
    assert t.ok and flake.current_generation("web1") == 1  # test leaves the profile alone
    boot = await ex.execute(req("boot", rev2), ctx)
    assert boot.ok and flake.current_generation("web1") == 2
    path2 = boot.data["path"]
    assert flake.activations("web1")[1:] == [
        ("dry-activate", path2),
        ("test", path2),
        ("boot", path2),
    ]


async def test_rollback_action_goes_to_the_previous_generation(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    none = await ex.execute(req("rollback", rev1), ctx)
    assert not none.ok and none.error is not None
    assert none.error.value == "no_previous_generation"
    a = await ex.execute(req("switch", rev1), ctx)
    assert (await ex.execute(req("switch", rev2), ctx)).ok
    back = await ex.execute(req("rollback", rev2), ctx)
    assert back.ok and back.data["generation"] == 1 and back.data["revision"] == rev1
    assert flake.current_path("web1") == a.data["path"]
    assert flake.generations("web1") == [1, 2]  # an explicit rollback keeps generation 2


async def test_build_failures_and_bad_options_are_reported(web1) -> None:  # type: ignore[no-untyped-def]
    flake, _, _ = web1
    ctx = flake.context("web1")
    res = await ex.execute(req("build", "no-such-branch"), ctx)
    assert not res.ok and res.error is not None and res.error.value == "build_failed"
    bad = await ex.execute(req("switch", "main", health=[{"shell": "true"}]), ctx)
    assert not bad.ok and bad.error is not None and bad.error.value == "invalid_request"
    neg = await ex.execute(req("switch", "main", confirm_timeout=-1), ctx)
    assert not neg.ok and "confirm_timeout" in neg.message
    assert flake.activations("web1") == []


async def test_build_reports_the_store_path_by_branch(web1) -> None:  # type: ignore[no-untyped-def]
    flake, _, rev2 = web1
    res = await ex.execute(req("build", "main"), flake.context("web1"))
    assert res.ok and res.data["path"] == flake.build("web1", rev2)
    assert flake.generations("web1") == []


# -- over SSH: the controller runs the executor, the host keeps the watchdog -------


@pytest.fixture
def ssh_runner(ssh_lab_session, tmp_path):  # type: ignore[no-untyped-def]
    """A command runner over a real SSH connection to a loopback sshd."""
    from hlplay.transports.ssh import SshTransport
    from realparts import NIX_CONFIG

    conf = tmp_path / "nix.conf"
    conf.write_text(NIX_CONFIG)
    server = ssh_lab_session.start(
        f"nixhost-{tmp_path.name[-8:]}", netns=False, set_env={"NIX_USER_CONF_FILES": str(conf)}
    )
    host = ssh_lab_session.host(server, name="web1")
    transport = SshTransport(ssh_lab_session.inventory([host]))

    async def runner(argv, timeout):  # type: ignore[no-untyped-def]
        return await transport.run(host, argv, timeout=timeout)

    yield runner, transport
    server.stop()


async def test_magic_rollback_over_ssh(web1, ssh_runner) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    runner, transport = ssh_runner
    try:
        ctx = flake.context("web1", runner=runner)  # no waiter here: canary mode
        first = await ex.execute(req("switch", rev1), ctx)
        assert first.ok, first.message
        armed = await asyncio.wait_for(
            ex.execute(req("switch", rev2, confirm_timeout=1), ctx), 30
        )  # returns while the watchdog still runs: the channel did not wait for it
        assert armed.ok and armed.data["awaiting_confirm"] is True, armed.message
        deadline = time.monotonic() + 15
        while flake.current_generation("web1") != 1:
            assert time.monotonic() < deadline, "the watchdog did not roll back"
            await asyncio.sleep(0.1)

        again = await ex.execute(
            DeployRequest("switch", rev2, id="r2", options={"confirm_timeout": 1}), ctx
        )
        assert again.ok and again.data["awaiting_confirm"], again.message
        confirmed = await ex.confirm("r2", ctx)
        assert confirmed.ok, confirmed.message
        await asyncio.sleep(2.5)  # past the deadline (the watchdog counts whole seconds)
        assert flake.current_path("web1") == again.data["path"]
    finally:
        await transport.close()


async def test_build_on_the_controller_copies_the_closure(web1, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    store = tmp_path / "host-store"
    ctx = flake.context("web1", options={"build_on": "controller", "copy_to": str(store)})
    res = await ex.execute(req("switch", rev1), ctx)
    assert res.ok, res.message
    name = res.data["path"].rsplit("/", 1)[1]
    assert (store / "nix" / "store" / name / "bin" / "switch-to-configuration").exists()
    assert flake.current_generation("web1") == 1


async def test_a_request_cannot_set_context_options(web1, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, _ = web1
    evil = {"build_on": "controller", "copy_to": str(tmp_path / "elsewhere")}
    ctx = flake.context("web1")  # the host's own settings, as every runner builds them
    res = await ex.execute(req("switch", rev1, **evil), ctx)
    assert res.ok, res.message
    assert not (tmp_path / "elsewhere").exists()


async def test_a_request_cannot_strip_the_hosts_settings(web1, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")  # units in the host's units_dir
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    # a request naming a context option (units_dir) must neither set it nor
    # take the host's away: the health gate still reads the host's units
    res = await ex.execute(
        req("switch", rev2, units_dir=str(tmp_path / "none"), health=[{"unit_active": "web"}]),
        ctx,
    )
    assert res.ok, res.message
    assert [h["ok"] for h in res.data["health"]] == [True]


async def test_a_host_cut_off_during_activation_rolls_back_by_itself(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    flake.hold("web1")
    run = asyncio.create_task(
        ex.execute(req("switch", rev2, confirm_timeout=1, activate_timeout=2), ctx)
    )
    deadline = time.monotonic() + 30
    while len(flake.activations("web1")) < 2:  # the new system's activation has begun
        assert time.monotonic() < deadline, "the activation did not start"
        await asyncio.sleep(0.05)
    run.cancel()  # the listener or the controller is gone, mid-activation
    with pytest.raises(asyncio.CancelledError):
        await run
    flake.hold("web1", False)
    assert flake.current_generation("web1") == 2
    # the watchdog was armed before the activation: the host goes back by itself
    deadline = time.monotonic() + 15
    while flake.current_generation("web1") != 1 or flake.generations("web1") != [1]:
        assert time.monotonic() < deadline, "the watchdog did not roll back"
        await asyncio.sleep(0.1)


async def test_any_request_id_the_protocol_allows_names_a_canary(web1) -> None:  # type: ignore[no-untyped-def]
    flake, rev1, rev2 = web1
    ctx = flake.context("web1")
    assert (await ex.execute(req("switch", rev1), ctx)).ok
    odd = DeployRequest(
        action="switch", revision=rev2, id="deploy.2026/12 #3", options={"confirm_timeout": 30}
    )
    res = await ex.execute(odd, ctx)
    assert res.ok and res.data["awaiting_confirm"] is True, res.message
    assert (await ex.confirm("deploy.2026/12 #3", ctx)).ok
    assert flake.current_generation("web1") == 2
