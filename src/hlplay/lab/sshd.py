"""An OpenSSH server of the lab's own, on loopback, for the SSH-fallback host."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path


def sshd_binary() -> str | None:
    for cand in ("/usr/sbin/sshd", shutil.which("sshd")):
        if cand and Path(cand).exists():
            return cand
    return None


def _keygen(path: Path) -> None:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hlplay-lab", "-f", str(path)],
            check=True,
        )


def prepare(ssh_dir: Path, port: int, set_env: Mapping[str, str]) -> Path:
    """Write host and client keys, authorized_keys, known_hosts and sshd_config."""
    ssh_dir.mkdir(parents=True, exist_ok=True)
    home = ssh_dir / "home"
    home.mkdir(exist_ok=True)
    hostkey = ssh_dir / "hostkey_ed25519"
    client = ssh_dir / "id_ed25519"
    _keygen(hostkey)
    _keygen(client)
    (ssh_dir / "authorized_keys").write_text((ssh_dir / "id_ed25519.pub").read_text())
    host_pub = (ssh_dir / "hostkey_ed25519.pub").read_text().split()
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    env_line = " ".join(f"{k}={v}" for k, v in {"HOME": str(home), **set_env}.items())
    config = ssh_dir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {hostkey}",
                f"PidFile {ssh_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "MaxSessions 100",
                "MaxStartups 100:30:200",
                # a login shell's start-up files would cost ~100 ms per command
                f"SetEnv {env_line}",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    return config
