"""NatsServer: a real nats-server on a free loopback port, for tests and the lab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hlplay.natsserver import NatsServer, NatsServerError, port_open
from realparts import nats_server_bin, require

pytestmark = pytest.mark.nats


def test_start_stop_restart_on_the_same_port(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    server = NatsServer(work_dir=tmp_path)
    with server:
        port = server.port
        assert port_open("127.0.0.1", port)
        assert server.url == f"nats://127.0.0.1:{port}"
        server.restart()
        assert server.port == port and port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)


def test_a_detached_server_outlives_its_starter(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    code = (
        "from hlplay.natsserver import NatsServer;"
        f"s = NatsServer(work_dir={str(tmp_path)!r}).start(detach=True);"
        "print(s.port, s.pid)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    port, pid = map(int, out.stdout.split())
    try:
        assert port_open("127.0.0.1", port)
        assert (tmp_path / "nats-server.pid").read_text().strip() == str(pid)
        assert (tmp_path / "nats-server.log").exists()
    finally:
        os.kill(pid, 15)


def test_a_bad_config_is_reported_with_the_server_log(tmp_path: Path) -> None:
    require(nats_server_bin(), "nats-server")
    with pytest.raises(NatsServerError, match="nats-server exited"):
        NatsServer("authorization { users = [ { nkey: ", work_dir=tmp_path).start()
