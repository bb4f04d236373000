"""SSH fan-out: 20 hosts x 5 ``command: /bin/true`` tasks, hlplay vs ansible-playbook vs pyinfra.

Every tool runs as the command a user would type, in a fresh process, against
the same real sshds (one network namespace, address and hostname per host
where ``ip netns`` works, else sshds on loopback ports), with host keys
checked against the same known_hosts file. Each tool runs the tasks the way
it runs a play: task by task, every host at once.

    .venv/bin/python bench/ssh.py [--hosts 20] [--tasks 5] [--rounds 3]

ansible-core and pyinfra are installed on first use into a venv under
``$XDG_CACHE_HOME/hlplay-bench`` (``~/.cache/hlplay-bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from fixtures.sshd import SshLab, ssh_lab  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hlplay-bench"
PEERS_VENV = CACHE / "venv"
PEER_PACKAGES = ("ansible-core", "pyinfra")


# -- the peers' venv -------------------------------------------------------------


def peers_venv() -> Path:
    """A venv with ansible-core and pyinfra, made on first use."""
    bin_dir = PEERS_VENV / "bin"
    if not (bin_dir / "ansible-playbook").exists() or not (bin_dir / "pyinfra").exists():
        print(f"installing {', '.join(PEER_PACKAGES)} into {PEERS_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(bin_dir / "pip"), "install", "-q", *PEER_PACKAGES], check=True)
    return bin_dir


def tool_version(argv: Sequence[str]) -> str:
    out = subprocess.run(list(argv), capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "?"


# -- the three runs --------------------------------------------------------------


def write_hlplay(work: Path, lab: SshLab, tasks: int) -> list[str]:
    """An inventory and a playbook; the command that runs them."""
    inv = work / "hlplay"
    inv.mkdir()
    hosts = {}
    for s in lab.servers:
        hosts[s.name] = {
            "tier": "test",
            "transport": "ssh",
            "address": s.address,
            "ssh": {
                "user": "root",
                "port": s.port,
                "key": str(lab.client_key),
                "known_hosts": str(lab.known_hosts),
            },
        }
    (inv / "hosts.yml").write_text(json.dumps({"hosts": hosts}, indent=1))
    play = [
        {
            "name": "true everywhere",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [{"name": f"true {i}", "command": "/bin/true"} for i in range(tasks)],
        }
    ]
    (inv / "play.yml").write_text(json.dumps(play, indent=1))
    if engine_available():
        return [str(Path(sys.executable).parent / "hlplay"), str(inv / "play.yml"),
                "-i", str(inv / "hosts.yml")]  # fmt: skip
    # Without the playbook engine: the SSH transport, task by task, in a fresh process.
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--transport-worker",
        str(inv),
        str(tasks),
    ]


def engine_available() -> bool:
    try:
        import hlplay.engine.api as api
    except ImportError:
        return False
    return hasattr(api, "run_playbook")


async def transport_worker(inv: Path, tasks: int) -> int:
    """Run ``tasks`` x /bin/true on every host with SshTransport, as the engine would."""
    from hlplay.inventory.model import Group, Host, Inventory, SshSettings
    from hlplay.transports.ssh import SshTransport

    doc = json.loads((inv / "hosts.yml").read_text())
    hosts = [
        Host(
            name=name,
            tier=h["tier"],
            address=h["address"],
            transport="ssh",
            ssh=SshSettings(**h["ssh"]),
        )
        for name, h in doc["hosts"].items()
    ]
    inventory = Inventory(
        hosts={h.name: h for h in hosts}, groups={"all": Group("all", [h.name for h in hosts])}
    )
    transport = SshTransport(inventory)
    failed = 0
    try:
        for _ in range(tasks):
            results = await asyncio.gather(
                *(transport.run(h, ["/bin/true"]) for h in hosts), return_exceptions=True
            )
            failed += sum(1 for r in results if isinstance(r, BaseException) or r.rc != 0)
    finally:
        await transport.close()
    return 1 if failed else 0


def write_ansible(
    work: Path, lab: SshLab, tasks: int, bin_dir: Path
) -> tuple[list[str], dict[str, str]]:
    d = work / "ansible"
    d.mkdir()
    lines = ["[fleet]"]
    for s in lab.servers:
        lines.append(f"{s.name} ansible_host={s.address} ansible_port={s.port}")
    lines += [
        "[fleet:vars]",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={lab.client_key}",
        "ansible_python_interpreter=/usr/bin/python3",
        # host keys checked against the same file hlplay uses
        "ansible_ssh_common_args='-o UserKnownHostsFile="
        f"{lab.known_hosts} -o StrictHostKeyChecking=yes'",
    ]
    (d / "hosts.ini").write_text("\n".join(lines) + "\n")
    play = textwrap.dedent(
        """\
        - name: true everywhere
          hosts: fleet
          gather_facts: false
          tasks:
        """
    ) + "".join(f"    - name: true {i}\n      command: /bin/true\n" for i in range(tasks))
    (d / "play.yml").write_text(play)
    tmp = d / "tmp"
    tmp.mkdir()
    env = {
        "ANSIBLE_HOME": str(tmp / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        "ANSIBLE_REMOTE_TMP": str(tmp / "remote"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    argv = [str(bin_dir / "ansible-playbook"), "-i", str(d / "hosts.ini"), "-f", "20",
            str(d / "play.yml")]  # fmt: skip
    return argv, env


def write_pyinfra(work: Path, lab: SshLab, tasks: int, bin_dir: Path) -> list[str]:
    d = work / "pyinfra"
    d.mkdir()
    hosts = [
        (
            s.name,
            {
                "ssh_hostname": s.address,
                "ssh_port": s.port,
                "ssh_user": "root",
                "ssh_key": str(lab.client_key),
                "ssh_known_hosts_file": str(lab.known_hosts),
                "ssh_strict_host_key_checking": "yes",
            },
        )
        for s in lab.servers
    ]
    (d / "inventory.py").write_text(f"fleet = {hosts!r}\n")
    ops = "".join(f'server.shell(name="true {i}", commands=["/bin/true"])\n' for i in range(tasks))
    (d / "deploy.py").write_text("from pyinfra.operations import server\n\n" + ops)
    return [str(bin_dir / "pyinfra"), "-y", "--parallel", "20",
            str(d / "inventory.py"), str(d / "deploy.py")]  # fmt: skip


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=cwd)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{Path(argv[0]).name} failed (rc {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return elapsed


# -- main ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="runs per tool; the median counts")
    ap.add_argument("--no-netns", action="store_true", help="sshds on loopback ports only")
    ap.add_argument("--skip-ansible", action="store_true")
    ap.add_argument("--skip-pyinfra", action="store_true")
    ap.add_argument("--transport-worker", nargs=2, metavar=("DIR", "TASKS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.transport_worker:
        return asyncio.run(
            transport_worker(Path(args.transport_worker[0]), int(args.transport_worker[1]))
        )

    bin_dir = peers_venv() if not (args.skip_ansible and args.skip_pyinfra) else None
    with tempfile.TemporaryDirectory(prefix="hlplay-bench-ssh-") as tmp:
        work = Path(tmp)
        with ssh_lab(work / "lab", netns=False if args.no_netns else None) as lab:
            t0 = time.perf_counter()
            for i in range(args.hosts):
                lab.start(f"bench{i + 1:02d}")
            layout = "one network namespace per host" if lab.use_netns else "loopback ports"
            print(
                f"{args.hosts} sshds ({layout}) up in {time.perf_counter() - t0:.2f}s; "
                f"{args.tasks} x /bin/true per host, {args.rounds} rounds, median"
            )
            runs: dict[str, tuple[list[str], dict[str, str] | None]] = {}
            hl_argv = write_hlplay(work, lab, args.tasks)
            how = "playbook engine" if engine_available() else "SSH transport (no engine yet)"
            runs[f"hlplay ({how})"] = (hl_argv, None)
            if bin_dir is not None and not args.skip_ansible:
                a_argv, a_env = write_ansible(work, lab, args.tasks, bin_dir)
                runs[tool_version([str(bin_dir / "ansible-playbook"), "--version"])] = (
                    a_argv,
                    a_env,
                )
            if bin_dir is not None and not args.skip_pyinfra:
                runs[
                    "pyinfra " + tool_version([str(bin_dir / "pyinfra"), "--version"]).split()[-1]
                ] = (
                    write_pyinfra(work, lab, args.tasks, bin_dir),
                    None,
                )
            times: dict[str, list[float]] = {name: [] for name in runs}
            # Interleaved rounds, so that a noisy moment hits every tool alike.
            for _ in range(args.rounds):
                for name, (argv, env) in runs.items():
                    times[name].append(timed(argv, env, cwd=work))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    hl_name = next(iter(medians))
    hl = medians[hl_name]
    print()
    for name, med in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:45s} {med:7.2f}s   (runs: {spread})")
    print()
    for name, med in medians.items():
        if name != hl_name:
            print(f"  {name.split()[0]} / hlplay: {med / hl:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
