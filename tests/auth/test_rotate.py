"""``hlplay keys rotate``: a new key at once, the old one still valid for a grace period."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.nats import NatsFleet, make_inventory
from hlplay.auth.keys import (
    KeyFileError,
    find_public_key,
    find_public_keys,
    new_named,
    parse_duration,
    prune,
    public_key_of,
    read_retired,
    read_seed,
    rotate,
)
from hlplay.auth.natsconfig import plan_users, render_config
from hlplay.auth.trust import (
    host_public_key,
    host_public_keys,
    load_allowed_keys,
    tier_deployers,
    write_trust_files,
)
from hlplay.cli.main import cli
from hlplay.inventory.model import Host, Inventory
from hlplay.protocol.messages import ErrorCode
from hlplay.protocol.signing import SignatureError, sign, verify

T0 = 1_800_000_000.0
HOUR = 3600.0


def inventory() -> Inventory:
    hosts = [Host("web1", "test", ("web",)), Host("web9", "prod", ("web",))]
    return Inventory(hosts={h.name: h for h in hosts}, groups={})


def key(name: str, kdir: Path) -> str:
    value = find_public_key(name, kdir)
    assert value is not None, name
    return value


def keys_dir(tmp_path: Path) -> Path:
    kdir = tmp_path / "keys"
    for name in ("web1", "web9", "admin", "deployer-test"):
        new_named(name, kdir)
    return kdir


def test_rotate_writes_a_new_key_and_keeps_the_old_one_aside(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    old = key("admin", kdir)
    done = rotate("admin", kdir, grace=2 * HOUR, now=T0)
    assert done.public_key != old
    assert key("admin", kdir) == done.public_key
    assert public_key_of(read_seed(kdir / "admin.seed")) == done.public_key
    assert stat.S_IMODE((kdir / "admin.seed").stat().st_mode) == 0o600
    assert done.old_seed == kdir / "admin.old-20270115T080000Z.seed"
    assert public_key_of(read_seed(done.old_seed)) == old
    assert stat.S_IMODE(done.old_seed.stat().st_mode) == 0o600
    assert done.old_seed.with_suffix(".pub").read_text().strip() == old
    assert not list(kdir.glob("*.new"))
    [record] = read_retired("admin", kdir)
    assert (record.key, record.until, record.seed) == (old, T0 + 2 * HOUR, done.old_seed.name)
    line = json.loads((kdir / "admin.retired").read_text())
    assert line == {"key": old, "until": T0 + 2 * HOUR, "retired": T0, "seed": done.old_seed.name}

    assert find_public_keys("admin", kdir, now=T0 + HOUR) == (done.public_key, old)
    assert find_public_keys("admin", kdir, now=T0 + 2 * HOUR) == (done.public_key,)


def test_rotating_twice_in_one_second_keeps_both_old_keys(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    first = key("admin", kdir)
    second = rotate("admin", kdir, grace=HOUR, now=T0).public_key
    third = rotate("admin", kdir, grace=HOUR, now=T0).public_key
    assert find_public_keys("admin", kdir, now=T0) == (third, first, second)
    assert len(list(kdir.glob("admin.old-*.seed"))) == 2


def test_old_key_stays_in_trust_files_and_server_config_until_expiry(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    old_admin = key("admin", kdir)
    old_web1 = key("web1", kdir)
    admin = rotate("admin", kdir, grace=HOUR, now=T0).public_key
    web1 = rotate("web1", kdir, grace=HOUR, now=T0).public_key
    deployer = key("deployer-test", kdir)

    during = tier_deployers(inventory(), keys_dir=kdir, now=T0 + 60)
    assert during == {"test": (deployer, admin, old_admin), "prod": (admin, old_admin)}
    after = tier_deployers(inventory(), keys_dir=kdir, now=T0 + HOUR)
    assert after == {"test": (deployer, admin), "prod": (admin,)}

    from hlplay.auth.keys import retired_notes

    trust = tmp_path / "trust"
    write_trust_files(trust, during, notes=retired_notes(kdir, now=T0 + 60))
    text = (trust / "prod.deployers").read_text()
    assert f"{old_admin}  # retired admin key, accepted until 2027-01-15T09:00:00Z" in text
    assert load_allowed_keys(trust / "prod.deployers") == {admin, old_admin}
    write_trust_files(trust, after)
    assert load_allowed_keys(trust / "prod.deployers") == {admin}

    users = plan_users(inventory(), keys_dir=kdir, now=T0 + 60)
    by_key = {u.nkey: u for u in users}
    # the old key may do exactly what the new one may, no more
    for new, old in ((admin, old_admin), (web1, old_web1)):
        assert by_key[old].name == by_key[new].name
        assert by_key[old].publish == by_key[new].publish
        assert by_key[old].subscribe == by_key[new].subscribe
        assert by_key[old].retired_until == T0 + HOUR
        assert by_key[new].retired_until is None
    config = render_config(inventory(), keys_dir=kdir, now=T0 + 60)
    assert old_admin in config and old_web1 in config
    assert "retired key, let in until 2027-01-15T09:00:00Z" in config
    later = render_config(inventory(), keys_dir=kdir, now=T0 + HOUR)
    assert old_admin not in later and old_web1 not in later and admin in later

    # keys the caller names are all the keys it has: no retired ones join them
    given = {"admin": admin, "web1": web1, "web9": key("web9", kdir)}
    assert old_admin not in render_config(inventory(), keys_dir=kdir, keys=given, now=T0)


def test_a_hosts_answers_verify_against_its_old_key_during_the_grace(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    old_seed = read_seed(kdir / "web1.seed")
    done = rotate("web1", kdir, grace=HOUR, now=T0)
    inv = inventory()
    assert host_public_key(inv, "web1", keys_dir=kdir) == done.public_key
    during = host_public_keys(inv, "web1", keys_dir=kdir, now=T0 + 1)
    assert during == {done.public_key, done.retired.key}
    assert host_public_keys(inv, "web1", keys_dir=kdir, now=T0 + HOUR) == {done.public_key}
    answer = sign({"hostname": "web1", "status": "completed", "id": "r1"}, old_seed)
    verify(answer, during)
    # another host's retired keys are not web1's
    assert done.retired.key not in host_public_keys(inv, "web9", keys_dir=kdir, now=T0 + 1)
    assert host_public_keys(inv, "web1") == frozenset()


def test_prune_deletes_only_expired_keys(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    short = rotate("admin", kdir, grace=HOUR, now=T0)
    long = rotate("admin", kdir, grace=10 * HOUR, now=T0 + 1)
    assert prune(kdir, now=T0 + 2) == []
    removed = prune(kdir, now=T0 + 2 * HOUR)
    assert removed == [short.old_seed, short.old_seed.with_suffix(".pub")]
    assert [r.key for r in read_retired("admin", kdir)] == [long.retired.key]
    assert long.old_seed.exists() and (kdir / "admin.seed").exists()
    assert prune(kdir, ["admin"], now=T0 + 11 * HOUR)[-1] == kdir / "admin.retired"
    assert not (kdir / "admin.retired").exists()
    assert sorted(p.name for p in kdir.glob("admin*")) == ["admin.pub", "admin.seed"]


def test_a_record_cannot_make_prune_delete_the_current_key(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    old = key("web9", kdir)
    (kdir / "admin.retired").write_text(
        json.dumps({"key": old, "until": T0, "seed": "admin.seed"}) + "\n"
    )
    prune(kdir, now=T0 + 1)
    assert (kdir / "admin.seed").exists()


def test_a_broken_retired_file_is_named_with_its_line(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    rotate("admin", kdir, grace=HOUR, now=T0)
    with (kdir / "admin.retired").open("a") as fh:
        fh.write('{"key": "SUAAAA", "until": 1}\n')
    with pytest.raises(KeyFileError, match=r"admin\.retired:2: not a retired key record"):
        find_public_keys("admin", kdir, now=T0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400), ("36h", 36 * 3600), ("1d12h", 36 * 3600), ("90m", 5400), ("0s", 0)],
)
def test_grace_periods(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration("45") == 45


@pytest.mark.parametrize("text", ["", "7x", "-1d", "d", "1d 2h", "nan", "100000d"])
def test_bad_grace_periods_are_refused(text: str) -> None:
    with pytest.raises(KeyFileError, match="not a duration"):
        parse_duration(text)


def test_cli_rotate_end_to_end(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    old = key("deployer-test", kdir)
    result = CliRunner().invoke(
        cli, ["keys", "rotate", "deployer-test", "--dir", str(kdir), "--grace", "2h"]
    )
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert key("deployer-test", kdir) == new
    assert f"retired {old}" in result.stderr
    [record] = read_retired("deployer-test", kdir)
    assert record.key == old
    assert abs(record.until - (time.time() + 2 * HOUR)) < 60

    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts:\n  web1: {tier: test, roles: [web]}\n  web9: {tier: prod}\n")
    out, trust = tmp_path / "nats.conf", tmp_path / "trust"
    config = ["nats", "config", "-i", str(inv), "--keys-dir", str(kdir)]
    result = CliRunner().invoke(cli, [*config, "--out", str(out), "--trust-dir", str(trust)])
    assert result.exit_code == 0, result.output
    assert old in out.read_text() and new in out.read_text()
    assert {old, new} <= load_allowed_keys(trust / "test.deployers")
    assert old not in load_allowed_keys(trust / "prod.deployers")

    # a grace of nothing: gone from the very next config
    result = CliRunner().invoke(
        cli, ["keys", "rotate", "deployer-test", "--dir", str(kdir), "--grace", "0s"]
    )
    assert result.exit_code == 0, result.output
    assert "no longer valid" in result.stderr
    newest = result.stdout.strip()
    result = CliRunner().invoke(cli, config)
    assert newest in result.stdout and new not in result.stdout and old in result.stdout

    result = CliRunner().invoke(cli, ["keys", "prune", "--dir", str(kdir)])
    assert result.exit_code == 0, result.output
    assert "removed" in result.stderr
    assert [r.key for r in read_retired("deployer-test", kdir)] == [old]


def hlplay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_errors_are_one_line_with_the_path(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    line = one_error_line(hlplay("keys", "rotate", "nobody", "--dir", str(kdir)))
    assert f"{kdir / 'nobody.seed'}: no such key to rotate" in line
    line = one_error_line(hlplay("keys", "rotate", "admin", "--dir", str(kdir), "--grace", "7x"))
    assert "--grace: not a duration: '7x'" in line
    line = one_error_line(hlplay("keys", "rotate", "../admin", "--dir", str(kdir)))
    assert "invalid key name" in line

    # the record cannot be written: nothing changes, the old key stays current
    current = key("admin", kdir)
    (kdir / "admin.retired").mkdir()
    line = one_error_line(hlplay("keys", "rotate", "admin", "--dir", str(kdir)))
    assert f"{kdir / 'admin.retired'}:" in line
    assert key("admin", kdir) == current
    left = sorted(p.name for p in kdir.glob("admin*"))
    assert left == ["admin.pub", "admin.retired", "admin.seed"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_an_unwritable_keys_directory_is_named(tmp_path: Path) -> None:
    kdir = keys_dir(tmp_path)
    kdir.chmod(0o500)
    try:
        line = one_error_line(hlplay("keys", "rotate", "admin", "--dir", str(kdir)))
    finally:
        kdir.chmod(0o700)
    assert f"{kdir}: not writable" in line


async def _connects(url: str, seed: str) -> bool:
    import nats
    from nats.errors import NoServersError

    async def quiet(exc: Exception) -> None:
        pass

    try:
        nc = await nats.connect(
            url,
            nkeys_seed_str=seed,
            allow_reconnect=False,
            connect_timeout=2,
            max_reconnect_attempts=0,
            error_cb=quiet,
        )
    except (TimeoutError, NoServersError, OSError):
        return False
    except Exception as exc:  # nats-py raises the server's -ERR as several types
        if "authorization" in str(exc).lower():
            return False
        raise
    await nc.close()
    return True


async def _deploy(fleet: NatsFleet, connect_as: str, signed_by: str, rid: str) -> dict[str, object]:
    """A switch request to web1, sent on ``connect_as``'s connection, signed with ``signed_by``."""
    import nats

    nc = await nats.connect(fleet.url, nkeys_seed_str=connect_as)
    try:
        request = {"action": "switch", "revision": "main", "id": rid, "to": "deploy.test.web1"}
        payload = json.dumps(sign(request, signed_by)).encode()
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("deploy.test.web1", payload, reply=inbox)
        while True:
            doc: dict[str, object] = json.loads((await sub.next_msg(timeout=10)).data)
            if doc["status"] in ("rejected", "completed", "failed"):
                return doc
    finally:
        await nc.close()


@pytest.mark.nats
async def test_old_admin_key_keeps_working_on_a_real_server_until_expiry(
    fleet_factory: Callable[..., NatsFleet],
) -> None:
    fleet = fleet_factory(make_inventory([("web1", "test", ("web",))]))
    kdir = fleet.keys_dir
    old_seed = read_seed(kdir / "admin.seed")
    now = time.time()
    done = rotate("admin", kdir, grace=HOUR, now=now)
    new_seed = read_seed(kdir / "admin.seed")
    trust = fleet.work / "trust"

    def regenerate(at: float) -> None:
        """What `hlplay nats config --trust-dir` does at ``at``, and the server reloaded."""
        fleet.server.config_text = render_config(fleet.inventory, keys_dir=kdir, now=at)
        fleet.server.restart()
        write_trust_files(trust, tier_deployers(fleet.inventory, keys_dir=kdir, now=at))

    regenerate(now)
    assert await _connects(fleet.url, old_seed)
    assert await _connects(fleet.url, new_seed)
    assert load_allowed_keys(trust / "test.deployers") >= {done.public_key, done.retired.key}
    listener = fleet.start_listener("web1")
    reply = await _deploy(fleet, old_seed, old_seed, "old-key-during-grace")
    assert reply["status"] == "completed", reply
    reply = await _deploy(fleet, new_seed, new_seed, "new-key")
    assert reply["status"] == "completed", reply

    listener.stop()
    regenerate(done.retired.until + 1)
    assert not await _connects(fleet.url, old_seed)
    assert await _connects(fleet.url, new_seed)
    allowed = load_allowed_keys(trust / "test.deployers")
    assert done.retired.key not in allowed and done.public_key in allowed
    request = sign({"action": "switch", "revision": "main", "id": "late"}, old_seed)
    with pytest.raises(SignatureError) as info:
        verify(request, allowed)
    assert info.value.code == ErrorCode.KEY_NOT_ALLOWED
    # the listener given the new file refuses the old key even on a bus that let it in
    fleet.start_listener("web1")
    reply = await _deploy(fleet, new_seed, old_seed, "old-key-after-grace")
    assert reply["status"] == "rejected"
    assert reply["error"] == ErrorCode.KEY_NOT_ALLOWED.value
    reply = await _deploy(fleet, new_seed, new_seed, "new-key-after-grace")
    assert reply["status"] == "completed", reply
