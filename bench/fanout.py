"""Fan-out: one deploy request to 500 listeners, until the last final status.

A real nats-server with the authorization config ``hlplay nats config``
writes for a 500-host tier (one NKey user per listener, tiered permissions),
500 real listeners (the ``noop`` executor) spread over a few processes, and
the controller's NATS transport. Each run publishes a ``noop`` action and
waits for all 500 final statuses; the figure is the median of 5 runs.

Measured side by side: one publish to ``deploy.<tier>.all`` (what hlplay
compiles a whole-tier selection to) against one publish per host subject (what
a tool without tier subjects must do) over the same connection and listeners;
and the whole fan-out signed (requests signed by the controller, every answer
signed by its listener and checked against that host's key: the default)
against unsigned, on fresh listeners each.

    python bench/fanout.py [--hosts 500] [--procs 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hlplay.auth.keys import generate
from hlplay.auth.natsconfig import render_config
from hlplay.inventory.model import Host, Inventory, NatsSettings, Settings
from hlplay.inventory.targets import NatsTarget
from hlplay.natsserver import NatsServer
from hlplay.protocol.messages import DeployRequest
from hlplay.transports.nats import NatsTransport

TIER = "bench"
TARGET_SECONDS = 1.0


def start_listener_procs(
    url: str,
    hosts: list[dict[str, object]],
    procs: int,
    work: Path,
    *,
    trusted: list[str] | None,
) -> list[subprocess.Popen[bytes]]:
    """Listeners that take requests signed by ``trusted`` and sign their answers;
    with ``trusted=None``, unsigned both ways (the baseline)."""
    out: list[subprocess.Popen[bytes]] = []
    for i in range(procs):
        spec = {
            "urls": [url],
            "tier": TIER,
            "executor": "noop",
            "progress_interval": 0.5,
            "trusted_keys": trusted,
            "accept_unsigned": trusted is None,
            "sign": trusted is not None,
            "hosts": hosts[i::procs],
        }
        path = work / f"spec{i}-{'signed' if trusted else 'unsigned'}.json"
        path.write_text(json.dumps(spec))
        out.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from hlplay.agent.listener import run_many_main; run_many_main()",
                    str(path),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
    for proc in out:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("ready"):
            raise SystemExit(f"listener process failed to start: {line!r}")
    return out


async def measure(transport: NatsTransport, targets: list[NatsTarget], runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        out = await transport.deploy_targets(targets, DeployRequest("noop", "main"), timeout=60)
        elapsed = time.perf_counter() - start
        bad = [o for o in out.values() if o.status != "completed"]
        if bad:
            raise SystemExit(f"{len(bad)} hosts did not complete: {bad[0]}")
        times.append(elapsed)
        await asyncio.sleep(0.2)
    return times


async def one_fleet(
    server_url: str,
    inventory: Inventory,
    keys: dict[str, tuple[str, str]],
    admin_seed: Path,
    procs: int,
    runs: int,
    work: Path,
    *,
    signed: bool,
) -> tuple[list[float], list[float], list[NatsTarget]]:
    """Tier and per-host timings on a fresh set of listeners, signed or not."""
    names = list(inventory.hosts)
    t0 = time.perf_counter()
    hosts = [{"name": n, "seed": keys[n][0], "roles": ["web"]} for n in names]
    trusted = [keys["admin"][1]] if signed else None
    listeners = start_listener_procs(server_url, hosts, procs, work, trusted=trusted)
    what = "signed" if signed else "unsigned"
    print(f"{len(names)} {what} listeners in {procs} processes ready in "
          f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    settings = Settings(nats=NatsSettings(urls=(server_url,), credentials=str(admin_seed)))
    transport = NatsTransport(Inventory(hosts=inventory.hosts, groups={}, settings=settings))
    transport.signatures = signed
    try:
        tier_targets, _ = transport.plan(list(inventory.hosts.values()))
        per_host = [NatsTarget(f"deploy.{TIER}.{n}", TIER, "host", frozenset({n})) for n in names]
        await measure(transport, tier_targets, 1)  # warm-up
        tier_times = await measure(transport, tier_targets, runs)
        host_times = await measure(transport, per_host, runs)
        if signed and transport.forged:
            raise SystemExit(f"{len(transport.forged)} answers not believed: {transport.forged[0]}")
    finally:
        await transport.close()
        for proc in listeners:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in listeners:
            proc.wait(30)
    return tier_times, host_times, tier_targets


def _line(label: str, times: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(times):.3f}s ({', '.join(f'{t:.3f}' for t in times)})"
    )


async def bench(n_hosts: int, procs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hlplay-fanout-") as tmp:
        work = Path(tmp)
        names = [f"h{i:04d}" for i in range(n_hosts)]
        keys = {name: generate() for name in [*names, "admin"]}
        # each host's answer key, as the inventory (or the keys directory) gives it
        inventory = Inventory(
            hosts={
                n: Host(name=n, tier=TIER, roles=("web",), vars={"nkey": keys[n][1]}) for n in names
            },
            groups={},
        )
        config = render_config(inventory, keys={n: pub for n, (_, pub) in keys.items()})
        admin_seed = work / "admin.seed"
        admin_seed.write_text(keys["admin"][0])
        with NatsServer(config, work_dir=work / "nats") as server:
            args = (server.url, inventory, keys, admin_seed, procs, runs, work)
            plain_tier, plain_host, _ = await one_fleet(*args, signed=False)
            tier_times, host_times, tier_targets = await one_fleet(*args, signed=True)
    tier_med = statistics.median(tier_times)
    host_med = statistics.median(host_times)
    subjects = ", ".join(t.subject for t in tier_targets)
    print(_line(f"signed, one publish to {subjects}", tier_times))
    print(_line(f"signed, one publish per host ({n_hosts} subjects)", host_times))
    print(_line(f"unsigned, one publish to {subjects}", plain_tier))
    print(_line("unsigned, one publish per host", plain_host))
    print(f"ratio per-host / tier (signed): {host_med / tier_med:.2f}x")
    overhead = tier_med / statistics.median(plain_tier) - 1
    print(f"signing and verifying cost (tier publish): {100 * overhead:+.0f}% "
          f"(target under +10%: {'OK' if overhead < 0.10 else 'MISSED'})")  # fmt: skip
    verdict = "OK" if tier_med < TARGET_SECONDS else "MISSED"
    print(f"target < {TARGET_SECONDS:g}s for {n_hosts} hosts: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(bench(args.hosts, args.procs, args.runs))


if __name__ == "__main__":
    main()
