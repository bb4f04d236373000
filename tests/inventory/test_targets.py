"""Target compilation: the fewest disjoint NATS subjects reaching exactly the selected hosts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlplay.errors import SelectionError
from hlplay.inventory.loader import load_inventory
from hlplay.inventory.model import Host, Inventory, TransportName
from hlplay.inventory.patterns import select_hosts
from hlplay.inventory.targets import EXACT_LIMIT, TargetPlan, compile_targets

FLEET = """
hosts:
  t-web1: {tier: test, roles: [web]}
  t-web2: {tier: test, roles: [web]}
  t-db1: {tier: test, roles: [db]}
  t-ssh1: {tier: test, roles: [web], transport: ssh, address: 10.0.0.9}
  p-web1: {tier: prod, roles: [web]}
  p-web2: {tier: prod, roles: [web, cache]}
  p-db1: {tier: prod, roles: [db, cache]}
  p-db2: {tier: prod, roles: [db]}
  p-mon1: {tier: prod, roles: [monitoring]}
  ctl: {tier: prod, transport: local}
"""


@pytest.fixture(scope="module")
def inv(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    root = tmp_path_factory.mktemp("fleet")
    (root / "hosts.yml").write_text(FLEET)
    return load_inventory(root)


def _summary(plan: TargetPlan) -> list[tuple[str, list[str]]]:
    return [(t.subject, sorted(t.hosts)) for t in plan.nats]


@pytest.mark.parametrize(
    ("pattern", "subjects", "direct"),
    [
        # a whole tier: one subject; SSH hosts do not stop it (they have no listener)
        ("tier=test", [("deploy.test.all", ["t-db1", "t-web1", "t-web2"])], ["t-ssh1"]),
        (
            "all",
            [
                ("deploy.test.all", ["t-db1", "t-web1", "t-web2"]),
                ("deploy.prod.all", ["p-db1", "p-db2", "p-mon1", "p-web1", "p-web2"]),
            ],
            ["t-ssh1", "ctl"],
        ),
        # a whole role of a tier
        ("tier=test,&role=web", [("deploy.test.role.web", ["t-web1", "t-web2"])], ["t-ssh1"]),
        ("tier=prod,&role=db", [("deploy.prod.role.db", ["p-db1", "p-db2"])], []),
        # part of a role: its subject would reach an unselected host, so host subjects
        ("t-web1", [("deploy.test.t-web1", ["t-web1"])], []),
        (
            "p-web1,p-db2",
            [("deploy.prod.p-web1", ["p-web1"]), ("deploy.prod.p-db2", ["p-db2"])],
            [],
        ),
        # overlapping roles: web {p-web1,p-web2} and cache {p-web2,p-db1} share p-web2;
        # subjects stay disjoint so no host gets the request twice
        (
            "p-web1,p-web2,p-db1",
            [("deploy.prod.role.cache", ["p-db1", "p-web2"]), ("deploy.prod.p-web1", ["p-web1"])],
            [],
        ),
        # all of prod but one host: roles that avoid it
        (
            "tier=prod,!p-mon1",
            [
                ("deploy.prod.role.web", ["p-web1", "p-web2"]),
                ("deploy.prod.role.db", ["p-db1", "p-db2"]),
            ],
            ["ctl"],
        ),
        ("ctl", [], ["ctl"]),
    ],
)
def test_compiles(
    inv: Inventory, pattern: str, subjects: list[tuple[str, list[str]]], direct: list[str]
) -> None:
    plan = compile_targets(inv, select_hosts(inv, pattern))
    assert _summary(plan) == subjects
    assert [d.host for d in plan.direct] == direct


def test_direct_targets_carry_transport_and_address(inv: Inventory) -> None:
    plan = compile_targets(inv, [inv.hosts["t-ssh1"], "ctl"])
    assert [d.to_dict() for d in plan.direct] == [
        {"host": "t-ssh1", "transport": "ssh", "address": "10.0.0.9"},
        {"host": "ctl", "transport": "local", "address": "ctl"},
    ]
    assert plan.expected_hosts() == {"t-ssh1", "ctl"}


def test_unknown_host(inv: Inventory) -> None:
    with pytest.raises(SelectionError, match=r"unknown host 'p-wbe1' \(did you mean 'p-web1', "):
        compile_targets(inv, ["p-wbe1"])


def test_custom_subject_templates(tree: Callable[..., Path]) -> None:
    root = tree(
        {
            "hosts.yml": """
            hlplay:
              nats:
                subjects:
                  host: 'ops.<tier>.host.<hostname>'
                  tier: 'ops.<tier>'
                  role: 'ops.role.<role>'  # across tiers
            hosts:
              a: {tier: test, roles: [web]}
              b: {tier: prod, roles: [web]}
              c: {tier: prod, roles: [db]}
            """
        }
    )
    inv = load_inventory(root)
    plan = compile_targets(inv, ["a", "b"])
    assert [(t.subject, t.kind, t.tier, sorted(t.hosts)) for t in plan.nats] == [
        ("ops.role.web", "role", "", ["a", "b"])
    ]
    plan = compile_targets(inv, ["b", "c"])
    assert _summary(plan) == [("ops.prod", ["b", "c"])]


def test_large_overlapping_components_fall_back_to_greedy() -> None:
    # every host has many roles: one big component of overlapping role subjects
    roles = [f"r{i}" for i in range(EXACT_LIMIT + 4)]
    hosts = {}
    for i in range(30):
        name = f"h{i}"
        hosts[name] = Host(name, "t", tuple(roles[j] for j in range(len(roles)) if (i + j) % 3))
    hosts["other"] = Host("other", "t", ("zzz",))
    inv = Inventory(hosts=hosts, groups={})
    selected = [f"h{i}" for i in range(30)]
    plan = compile_targets(inv, selected)
    _check_exact(inv, selected, plan)


# ---- properties over random fleets ---------------------------------------------------------


def _subjects_of(host: Host) -> set[str]:
    out = {f"deploy.{host.tier}.{host.name}", f"deploy.{host.tier}.all"}
    out |= {f"deploy.{host.tier}.role.{r}" for r in host.roles}
    return out


def _reach(inv: Inventory, subject: str) -> set[str]:
    return {h.name for h in inv.hosts.values() if h.has_listener and subject in _subjects_of(h)}


def _check_exact(inv: Inventory, selected: list[str], plan: TargetPlan) -> None:
    listeners = {h for h in selected if inv.hosts[h].has_listener}
    reached: list[str] = []
    for t in plan.nats:
        assert _reach(inv, t.subject) == set(t.hosts), t.subject  # expected = who listens
        assert t.hosts <= listeners, t.subject  # never an unselected host
        reached.extend(t.hosts)
    assert sorted(reached) == sorted(listeners)  # every selected listener, exactly once
    assert [d.host for d in plan.direct] == [
        h for h in inv.hosts if h in selected and not inv.hosts[h].has_listener
    ]


def _brute_minimum(inv: Inventory, selected: list[str]) -> int:
    """Fewest pairwise-disjoint subjects reaching exactly the selected listeners."""
    target = {h for h in selected if inv.hosts[h].has_listener}
    if not target:
        return 0
    candidates = {}
    for h in target:
        for s in _subjects_of(inv.hosts[h]):
            reach = _reach(inv, s)
            if reach <= target:
                candidates[s] = frozenset(reach)
    sets = list(set(candidates.values()))
    for k in range(1, len(target) + 1):
        for combo in itertools.combinations(sets, k):
            if sum(len(c) for c in combo) == len(target) and frozenset().union(*combo) == target:
                return k
    raise AssertionError("no cover")  # host subjects always cover


TRANSPORTS: list[TransportName] = ["nats", "nats", "nats", "ssh", "local"]


@st.composite
def fleets(draw: st.DrawFn, max_hosts: int, roles: int, tiers: int) -> tuple[Inventory, list[str]]:
    n = draw(st.integers(1, max_hosts))
    hosts: dict[str, Host] = {}
    for i in range(n):
        tier = f"t{draw(st.integers(0, tiers - 1))}"
        host_roles = draw(st.sets(st.sampled_from([f"r{j}" for j in range(roles)]), max_size=3))
        transport = draw(st.sampled_from(TRANSPORTS))
        hosts[f"h{i}"] = Host(f"h{i}", tier, tuple(sorted(host_roles)), transport=transport)
    selected = draw(st.lists(st.sampled_from(sorted(hosts)), unique=True, min_size=1))
    return Inventory(hosts=hosts, groups={}), selected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets(max_hosts=6, roles=3, tiers=2))
def test_targets_are_exact_and_minimal(case: tuple[Inventory, list[str]]) -> None:
    inv, selected = case
    plan = compile_targets(inv, selected)
    _check_exact(inv, selected, plan)
    assert len(plan.nats) == _brute_minimum(inv, selected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets(max_hosts=40, roles=6, tiers=3))
def test_targets_are_exact_on_larger_fleets(case: tuple[Inventory, list[str]]) -> None:
    inv, selected = case
    _check_exact(inv, selected, compile_targets(inv, selected))
