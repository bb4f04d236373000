"""The SSH transport against real sshds: commands, connection reuse, limits, host keys."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fixtures.sshd import Sshd, SshLab
from hlplay.transports.base import Unreachable
from hlplay.transports.ssh import SshTransport
from realparts import require

pytestmark = pytest.mark.sshd


async def test_command_returns_stdout_stderr_and_rc(ssh_lab_session: SshLab, sshd: Sshd) -> None:
    host = ssh_lab_session.host(sshd)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        ok = await t.run(host, ["echo", "hello", "world"])
        assert (ok.rc, ok.stdout, ok.timed_out) == (0, "hello world\n", False)
        bad = await t.run(host, ["ls", "/no/such/path"])
        assert bad.rc == 2
        assert "No such file" in bad.stderr
        missing = await t.run(host, ["no-such-program-xyz"])
        assert missing.rc == 127
    finally:
        await t.close()


async def test_arguments_are_never_shell_syntax(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    host = ssh_lab_session.host(sshd)
    t = SshTransport(ssh_lab_session.inventory([host]))
    marker = tmp_path / "injected"
    nasty = f"a; touch {marker}; $(touch {marker}) `touch {marker}` 'q\" *"
    try:
        res = await t.run(host, ["printf", "%s", nasty])
        assert res.rc == 0
        assert res.stdout == nasty
        assert not marker.exists()
    finally:
        await t.close()


async def test_stdin_and_environment_reach_the_command(ssh_lab_session: SshLab, sshd: Sshd) -> None:
    host = ssh_lab_session.host(sshd)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        res = await t.run(host, ["cat"], stdin=b"line one\nline two\n")
        assert res.stdout == "line one\nline two\n"
        env = await t.run(
            host, ["printenv", "HLPLAY_GREETING"], env={"HLPLAY_GREETING": "hi there"}
        )
        assert env.stdout == "hi there\n"
        bad = await t.run(host, ["true"], env={"BAD NAME": "x"})
        assert bad.rc != 0 and "invalid environment variable" in bad.stderr
    finally:
        await t.close()


async def test_one_connection_serves_every_command(ssh_lab_session: SshLab) -> None:
    server = ssh_lab_session.start("ssh-reuse", netns=False)
    host = ssh_lab_session.host(server)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        # Concurrent first uses share one connect; later ones reuse it.
        first = await asyncio.gather(*(t.run(host, ["true"]) for _ in range(10)))
        rest = [await t.run(host, ["true"]) for _ in range(20)]
        assert all(r.rc == 0 for r in first + rest)
        assert t.connects == 1
        assert server.accepted_logins() == 1
    finally:
        await t.close()


async def test_channel_bound_keeps_50_commands_within_maxsessions(
    ssh_lab_session: SshLab, tmp_path: Path
) -> None:
    # An sshd with Debian's default limits refuses an 11th session on one
    # connection; the transport's bound (5 here) must keep every command alive.
    server = ssh_lab_session.start("ssh-limits", netns=False, extra_config="MaxSessions 10")
    host = ssh_lab_session.host(server, vars={"hlplay_ssh_max_channels": 5})
    t = SshTransport(ssh_lab_session.inventory([host]))
    running = tmp_path / "running"
    running.mkdir()
    # Each command counts the commands running with it (through a shell on
    # purpose: the argv says so).
    script = f"touch {running}/$$; ls {running} | wc -l; sleep 0.05; rm {running}/$$"
    try:
        results = await asyncio.gather(*(t.run(host, ["sh", "-c", script]) for _ in range(50)))
        assert [r.rc for r in results] == [0] * 50, [r.stderr for r in results if r.rc]
        seen = [int(r.stdout.strip()) for r in results]
        assert max(seen) <= 5
        assert max(seen) >= 2  # they did run side by side
        assert t.connects == 1
    finally:
        await t.close()


async def test_changed_host_key_is_refused_with_a_clear_message(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    other = ssh_lab_session.base / "ssh-reuse" / "hostkey_ed25519.pub"
    if not other.exists():  # another server's key stands in for an impostor's
        ssh_lab_session.start("ssh-impostor", netns=False)
        other = ssh_lab_session.base / "ssh-impostor" / "hostkey_ed25519.pub"
    key = " ".join(other.read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd.known_hosts_name} {key}\n")
    host = ssh_lab_session.host(sshd, known_hosts=str(known))
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        with pytest.raises(Unreachable) as err:
            await t.run(host, ["true"])
        msg = str(err.value)
        assert f"host key for {host.name} does not match known_hosts ({known}" in msg
    finally:
        await t.close()


async def test_unknown_host_key_is_refused(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    host = ssh_lab_session.host(sshd, known_hosts=str(known))
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        with pytest.raises(Unreachable, match="is not in known_hosts"):
            await t.run(host, ["true"])
        missing = ssh_lab_session.host(sshd, known_hosts=str(tmp_path / "absent"))
        with pytest.raises(Unreachable, match="no known_hosts file"):
            await t.run(missing, ["true"])
    finally:
        await t.close()


async def test_host_key_checking_off_connects_and_warns_once(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = ssh_lab_session.host(sshd, known_hosts=str(tmp_path / "absent"), host_key_checking=False)
    t = SshTransport(ssh_lab_session.inventory([host]))
    caplog.set_level(logging.WARNING, logger="hlplay.transports.ssh")
    try:
        assert (await t.run(host, ["true"])).rc == 0
        await t.close()
        assert (await t.run(host, ["true"])).rc == 0  # a reconnect: still one warning
        warnings = [r for r in caplog.records if "host key checking is off" in r.getMessage()]
        assert len(warnings) == 1
        assert host.name in warnings[0].getMessage()
    finally:
        await t.close()


async def test_down_host_is_unreachable_while_others_run(
    ssh_lab_session: SshLab, sshd_fleet: list[Sshd]
) -> None:
    hosts = [ssh_lab_session.host(s) for s in sshd_fleet]
    down = ssh_lab_session.down_host("ssh-down")
    t = SshTransport(ssh_lab_session.inventory([*hosts, down]))
    try:
        results = await asyncio.gather(
            *(t.run(h, ["hostname"]) for h in [*hosts, down]), return_exceptions=True
        )
        *up, dead = results
        assert isinstance(dead, Unreachable)
        assert "cannot connect to ssh-down (root@127.0.0.1:" in str(dead)
        assert "connection refused" in str(dead)
        for h, res in zip(hosts, up, strict=True):
            assert not isinstance(res, BaseException), res
            assert res.rc == 0
            if ssh_lab_session.use_netns:  # each host is a machine of its own
                assert res.stdout.strip() == h.name
    finally:
        await t.close()


async def test_silent_host_is_unreachable_at_connect_timeout(ssh_lab_session: SshLab) -> None:
    # A port that accepts TCP but never says a word (a hung machine, a
    # black-holing firewall): the connect timeout must end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        host = ssh_lab_session.down_host("ssh-silent", port=port, connect_timeout=0.5)
        t = SshTransport(ssh_lab_session.inventory([host]))
        try:
            # (the outer bound only keeps a broken timeout from hanging the suite)
            with pytest.raises(Unreachable) as err:
                await asyncio.wait_for(t.run(host, ["true"]), 60)
            assert str(err.value) == (
                f"cannot connect to ssh-silent (root@127.0.0.1:{port}): timed out after 0.5s"
            )
        finally:
            await t.close()


async def test_wrong_client_key_is_an_authentication_failure(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path
) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host = ssh_lab_session.host(sshd, key=str(key))
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        with pytest.raises(
            Unreachable, match=r"authentication failed for ssh-solo \(root@127\.0\.0\.1:"
        ):
            await t.run(host, ["true"])
    finally:
        await t.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


async def test_dropped_connection_is_replaced_on_next_task(ssh_lab_session: SshLab) -> None:
    server = ssh_lab_session.start("ssh-drop", netns=False)
    host = ssh_lab_session.host(server)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        assert (await t.run(host, ["true"])).rc == 0
        # End this connection on the server side: its per-connection sshd processes.
        for child in _children(server.proc.pid):
            os.kill(child, 9)
        # dropped while idle: wait until the client has seen it go
        for _ in range(500):
            conn = t._hosts[host.name].conn
            if conn is None or conn.is_closed():
                break
            await asyncio.sleep(0.02)
        res = await t.run(host, ["echo", "again"])
        assert res.stdout == "again\n"
        assert t.connects == 2
    finally:
        await t.close()


def _processes_with(arg: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in cmd:
                found.append(int(entry))
    return found


async def test_timeout_kills_a_hanging_command(ssh_lab_session: SshLab, sshd: Sshd) -> None:
    host = ssh_lab_session.host(sshd)
    t = SshTransport(ssh_lab_session.inventory([host]))
    marker = "37.123"  # a sleep length nothing else uses
    try:
        res = await t.run(host, ["sleep", marker], timeout=0.5)
        assert res.timed_out and res.rc == -9
        assert "timed out after 0.5s" in res.stderr
        deadline = time.monotonic() + 3
        while _processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _processes_with(marker) == []
        # the connection survives for the next task
        assert (await t.run(host, ["true"])).rc == 0
    finally:
        await t.close()


async def test_become_prefixes_sudo_only_for_another_user(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    t = SshTransport(ssh_lab_session.inventory([]))
    as_root = ssh_lab_session.host(sshd)
    assert t.command_line(as_root, ["id", "-u"], become=True) == "id -u"
    as_alice = ssh_lab_session.host(sshd, user="alice", become=True)
    assert t.command_line(as_alice, ["id", "-u"]) == "sudo -n -u root -- id -u"
    assert (
        t.command_line(as_alice, ["echo", "a b"], env={"X": "1 2"})
        == "sudo -n -u root -- env -- 'X=1 2' echo 'a b'"
    )


BECOME_USER = "hlplay-become"


def become_user() -> str:
    """A non-root login with passwordless sudo: $HLPLAY_TEST_BECOME_USER, or one made here.

    As root (CI, the lab machine) the test makes its own user and a sudoers
    drop-in for it; elsewhere it needs one given.
    """
    given = os.environ.get("HLPLAY_TEST_BECOME_USER")
    if given:
        return given
    require(shutil.which("sudo"), "sudo")
    if os.geteuid() != 0:
        require(None, "a non-root login with passwordless sudo (HLPLAY_TEST_BECOME_USER)")
    import pwd

    try:
        pwd.getpwnam(BECOME_USER)
    except KeyError:
        # password "*": no password login, yet not a locked account (which sshd refuses)
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/sh", "--password", "*", BECOME_USER],
            check=True,
        )
    drop_in = Path("/etc/sudoers.d") / BECOME_USER
    if not drop_in.exists():
        drop_in.parent.mkdir(parents=True, exist_ok=True)
        drop_in.write_text(f"{BECOME_USER} ALL=(ALL) NOPASSWD: ALL\n")
        drop_in.chmod(0o440)
    return BECOME_USER


async def test_become_runs_the_command_as_root_via_sudo(
    ssh_lab_session: SshLab, sshd: Sshd
) -> None:
    user = become_user()
    # sshd reads a user's keys as that user: give it a file it may read
    keys = Path("/etc/hlplay-test-keys") if os.geteuid() == 0 else None
    server = sshd
    if keys is not None:
        keys.mkdir(mode=0o755, exist_ok=True)
        (keys / user).write_text(ssh_lab_session.client_pub + "\n")
        (keys / user).chmod(0o644)
        server = ssh_lab_session.start(
            "ssh-become", netns=False, extra_config=f"AuthorizedKeysFile {keys}/%u"
        )
    host = ssh_lab_session.host(server, user=user)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        plain = await t.run(host, ["id", "-un"])
        assert plain.stdout.strip() == user
        root = await t.run(host, ["id", "-un"], become=True)
        assert root.stdout.strip() == "root"
    finally:
        await t.close()
    # a host whose inventory says become: every command, the deploy pipeline's
    # included, runs through sudo
    always = ssh_lab_session.host(server, user=user, become=True)
    t = SshTransport(ssh_lab_session.inventory([always]))
    try:
        facts = await t.facts(always, timeout=30)
        assert facts["hostname"] == always.name and facts["uptime"] is not None
        assert (await t.run(always, ["id", "-un"])).stdout.strip() == "root"
    finally:
        await t.close()


async def test_sessions_refused_by_the_server_name_the_limit(ssh_lab_session: SshLab) -> None:
    server = ssh_lab_session.start("ssh-tight", netns=False, extra_config="MaxSessions 2")
    host = ssh_lab_session.host(server, vars={"hlplay_ssh_max_channels": 4})
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        results = await asyncio.gather(
            *(t.run(host, ["sleep", "0.3"]) for _ in range(4)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, Unreachable)]
        assert refused, results
        assert "MaxSessions below hlplay_ssh_max_channels, 4?" in str(refused[0])
        assert sum(1 for r in results if not isinstance(r, BaseException) and r.rc == 0) == 2
        # the tasks that got a session were not cut off, and the connection lives on
        # (sshd frees a closed session a moment after the client sees it end)
        for _ in range(50):
            try:
                rc = (await t.run(host, ["true"])).rc
                break
            except Unreachable:
                await asyncio.sleep(0.1)
        assert rc == 0
        assert t.connects == 1
    finally:
        await t.close()


async def test_a_key_held_by_the_ssh_agent_logs_in(
    ssh_lab_session: SshLab, sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No key in the inventory and none in ~/.ssh: only the agent can authenticate.
    if not (shutil.which("ssh-agent") and shutil.which("ssh-add")):
        pytest.skip("ssh-agent (openssh-client) not installed")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host = ssh_lab_session.host(sshd, name="ssh-agent-host", key=None)
    t = SshTransport(ssh_lab_session.inventory([host]))
    try:
        with pytest.raises(Unreachable, match="authentication failed"):
            await t.run(host, ["true"])
    finally:
        await t.close()

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        for _ in range(100):  # the agent creates its socket once it is ready
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        subprocess.run(
            ["ssh-add", "-q", str(ssh_lab_session.client_key)], env=env, check=True, timeout=30
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        t = SshTransport(ssh_lab_session.inventory([host]))
        try:
            res = await t.run(host, ["echo", "via agent"])
            assert (res.rc, res.stdout) == (0, "via agent\n")
        finally:
            await t.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)
