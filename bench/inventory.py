"""Benchmark: load + select + compile a 10,000-host inventory, and CLI start-up.

Generates a fleet (3 tiers, 8 roles, 4 sites of racks, group_vars and host_vars)
in a temporary directory, in hlplay's layout and in Ansible's, then measures:

* in-process: load, select (``tier=prod,&role=web``, a glob, a variable), compile;
* the CLI side by side with Ansible: ``hlplay inventory hosts PATTERN`` vs
  ``ansible PATTERN --list-hosts`` on the same fleet (when ansible is installed);
* ``hlplay --help`` start-up (median of 10).

    python bench/inventory.py [--hosts 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

TIERS = (("prod", 0.7), ("staging", 0.1), ("test", 0.2))
ROLES = ("web", "db", "cache", "queue", "monitoring", "media", "backup", "build")


def make_fleet(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    hosts = []
    for i in range(n):
        tier = rng.choices([t for t, _ in TIERS], weights=[w for _, w in TIERS])[0]
        roles = [ROLES[i % len(ROLES)]]
        if rng.random() < 0.15:
            extra = rng.choice(ROLES)
            if extra not in roles:
                roles.append(extra)
        host: dict[str, Any] = {
            "name": f"{tier}-{roles[0]}-{i:05d}",
            "tier": tier,
            "roles": roles,
            "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "transport": "ssh" if rng.random() < 0.1 else "nats",
            "site": f"site{i % 4}",
            "rack": f"rack{i % 4}-{i // 4 % 25:02d}",
        }
        if rng.random() < 0.1:
            host["vars"] = {"maintenance_window": f"0{i % 6}:00", "owner": f"team{i % 9}"}
        hosts.append(host)
    return hosts


def write_native(fleet: list[dict[str, Any]], root: Path) -> Path:
    inv = root / "native"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    hosts: dict[str, Any] = {}
    racks: dict[str, list[str]] = {}
    sites: dict[str, set[str]] = {}
    for h in fleet:
        body: dict[str, Any] = {"tier": h["tier"], "roles": h["roles"], "address": h["address"]}
        if h["transport"] != "nats":
            body["transport"] = h["transport"]
        if "vars" in h:
            body["vars"] = h["vars"]
        hosts[h["name"]] = body
        racks.setdefault(h["rack"], []).append(h["name"])
        sites.setdefault(h["site"], set()).add(h["rack"])
    groups: dict[str, Any] = {r: {"hosts": hs} for r, hs in racks.items()}
    for site, rs in sites.items():
        groups[site] = {"children": sorted(rs), "vars": {"site": site}}
    doc = {
        "hlplay": {"nats": {"urls": ["nats://nats.example:4222"]}},
        "vars": {"domain": "example.net"},
        "hosts": hosts,
        "groups": groups,
    }
    (inv / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
    write_vars(inv, fleet)
    return inv


def write_ansible(fleet: list[dict[str, Any]], root: Path) -> Path:
    """The same fleet as an Ansible YAML inventory: tiers and roles are also groups."""
    inv = root / "ansible"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    all_hosts: dict[str, Any] = {}
    children: dict[str, Any] = {}

    def add(group: str, host: str) -> None:
        children.setdefault(group, {"hosts": {}})["hosts"][host] = None

    for h in fleet:
        hv: dict[str, Any] = {
            "ansible_host": h["address"],
            "tier": h["tier"],
            "roles": h["roles"],
            "transport": h["transport"],
        }
        hv.update(h.get("vars", {}))
        all_hosts[h["name"]] = hv
        add(h["tier"], h["name"])
        for r in h["roles"]:
            add(r, h["name"])
        add(h["rack"].replace("-", "_"), h["name"])
    doc = {"all": {"vars": {"domain": "example.net"}, "hosts": all_hosts, "children": children}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
    write_vars(inv, fleet, implicit=False)
    return inv


def write_vars(inv: Path, fleet: list[dict[str, Any]], implicit: bool = True) -> None:
    """group_vars for tiers and roles (hlplay's implicit groups, or Ansible's plain ones)."""
    gv = inv / "group_vars"
    tier_prefix, role_prefix = ("tier_", "role_") if implicit else ("", "")
    (gv / "all.yml").write_text("timezone: UTC\nhealth_checks: [{kind: unit_active, unit: sshd}]\n")
    for tier, _ in TIERS:
        (gv / f"{tier_prefix}{tier}.yml").write_text(f"deploy_action: switch\ntier_label: {tier}\n")
    for role in ROLES:
        (gv / f"{role_prefix}{role}.yml").write_text(
            f"health_checks: [{{kind: unit_active, unit: {role}}}]\n"
        )
    for h in fleet[::100]:
        (inv / "host_vars" / f"{h['name']}.yml").write_text("pinned: true\n")


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Best of ``runs`` wall times (seconds), and the last result."""
    best = float("inf")
    result: Any = None
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_cli(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    return statistics.median(times)


def scripts_dir() -> Path:
    return Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from hlplay.inventory.loader import load_inventory
    from hlplay.inventory.patterns import select_hosts
    from hlplay.inventory.targets import compile_targets

    tmp = Path(tempfile.mkdtemp(prefix="hlplay-bench-"))
    try:
        fleet = make_fleet(args.hosts)
        native = write_native(fleet, tmp)
        ansible_inv = write_ansible(fleet, tmp)
        print(f"fleet: {args.hosts} hosts, best of {args.runs} runs, in-process")

        def pipeline(path: Path) -> tuple[float, float, float, float, float, dict[str, int]]:
            c0 = time.process_time()
            t0 = time.perf_counter()
            inv = load_inventory(path)
            t1 = time.perf_counter()
            a = select_hosts(inv, "tier=prod,&role=web")
            b = select_hosts(inv, "prod-db-*")
            t2 = time.perf_counter()
            pa = compile_targets(inv, a)
            pb = compile_targets(inv, b)
            t3 = time.perf_counter()
            cpu = time.process_time() - c0
            counts = {
                "web": len(a),
                "web_subjects": len(pa.nats),
                "glob": len(b),
                "glob_subjects": len(pb.nats),
            }
            return t1 - t0, t2 - t1, t3 - t2, t3 - t0, cpu, counts

        for label, path in (("hlplay layout", native), ("Ansible layout", ansible_inv)):
            results = []
            for _ in range(args.runs):
                gc.collect()
                results.append(pipeline(path))
            best = min(results, key=lambda r: r[3])
            load, select, comp, total, cpu, counts = best
            print(
                f"  {label:15s} load {load * 1000:4.0f} ms  select {select * 1000:4.1f} ms  "
                f"compile {comp * 1000:4.1f} ms  total {total * 1000:4.0f} ms "
                f"(cpu {cpu * 1000:4.0f} ms)  {'OK' if total < 1.0 else 'OVER'} (< 1 s)"
            )
        print(
            f"  'tier=prod,&role=web': {counts['web']} hosts -> {counts['web_subjects']} "
            f"NATS subjects; 'prod-db-*': {counts['glob']} hosts -> "
            f"{counts['glob_subjects']} subjects"
        )
        inv = load_inventory(native)
        t_var, hits = timed(lambda: select_hosts(inv, "owner=team3"), args.runs)
        print(f"  variable selector 'owner=team3': {len(hits)} hosts in {t_var * 1000:.0f} ms")
        every = list(inv.hosts)
        t_all, plan = timed(lambda: compile_targets(inv, every), args.runs)
        print(
            f"  compile all {len(every)} hosts: {len(plan.nats)} subjects + "
            f"{len(plan.direct)} direct in {t_all * 1000:.1f} ms"
        )

        # the CLI, side by side with Ansible on the same fleet
        hlplay = scripts_dir() / "hlplay"
        ansible = shutil.which("ansible", path=str(scripts_dir())) or shutil.which("ansible")
        cli_runs = max(3, args.runs // 2)
        t_h = run_cli(
            [str(hlplay), "inventory", "hosts", "-i", str(native), "tier=prod,&role=web"],
            cli_runs,
        )
        print(f"\nCLI, median of {cli_runs}: list the hosts of tier prod with role web")
        print(f"  hlplay inventory hosts 'tier=prod,&role=web'     {t_h * 1000:6.0f} ms")
        if ansible:
            t_a = run_cli(
                [ansible, "-i", str(ansible_inv), "prod:&web", "--list-hosts"],
                cli_runs,
            )
            print(f"  ansible 'prod:&web' --list-hosts                  {t_a * 1000:6.0f} ms")
            print(f"  hlplay is {t_a / t_h:.1f}x faster than ansible")
        else:
            print("  ansible: not installed (pip install -e '.[bench]'), comparison skipped")

        # start-up
        t_help = run_cli([str(hlplay), "--help"], 10)
        print(
            f"\nhlplay --help start-up, median of 10: {t_help * 1000:.0f} ms "
            f"({'OK' if t_help < 0.150 else 'OVER'} < 150 ms)"
        )
        if ansible:
            t_ahelp = run_cli([ansible, "--version"], 5)
            print(f"ansible --version, median of 5:       {t_ahelp * 1000:.0f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
