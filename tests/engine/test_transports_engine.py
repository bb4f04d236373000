"""The engine over transports: unreachable vs failed, NotSupported, batch modules, the pool."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from conftest import RunFn
from hlplay.inventory.model import Host, Inventory
from hlplay.modules import registry
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.transports.factory import TransportPool, TransportUnavailable
from hlplay.transports.local import LocalTransport


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_is_not_failed_and_wins_the_exit_code(
    run_pb: RunFn, make_inventory: Callable[..., Inventory]
) -> None:
    inv = make_inventory(
        {
            "up": {},
            "down": {
                "transport": "ssh",
                "address": "127.0.0.1",
                "ssh": {"port": _closed_port(), "user": "root", "host_key_checking": False},
            },
            "listener": {"transport": "nats"},
        }
    )
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: run
              command: /bin/true
            - name: next
              debug: msg=x
        """,
        inv,
    )
    status = rec.status("run")
    assert status == {"up": "changed", "down": "unreachable", "listener": "failed"}
    # NotSupported: the NATS transport runs deploy actions, not arbitrary commands
    msgs = {e.host: e.result["msg"] for e in rec.results("run")}
    assert "NATS" in msgs["listener"] or "nats" in msgs["listener"]
    assert "127.0.0.1" in msgs["down"]
    assert rec.ran("next") == ["up"]
    assert result.stats["down"].unreachable == 1 and result.stats["down"].failures == 0
    assert result.unreachable_hosts == ["down"]
    assert result.exit_code == 4  # unreachable is checked before failed


async def test_controller_side_modules_never_touch_the_hosts_transport(
    run_pb: RunFn, make_inventory: Callable[..., Inventory]
) -> None:
    inv = make_inventory(
        {"down": {"transport": "ssh", "address": "127.0.0.1", "ssh": {"port": _closed_port()}}}
    )
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - {name: d, debug: {msg: "{{ inventory_hostname }}"}}
            - {name: s, set_fact: {x: 1}}
            - {name: a, assert: {that: x == 1}}
        """,
        inv,
    )
    assert result.exit_code == 0
    assert rec.status("a") == {"down": "ok"}


class BatchProbe(Module):
    """Records each run_batch call: the hosts it got, and their arguments."""

    name = "batch_probe"
    batch = True
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {"value": Arg("str", required=True)}
    calls: ClassVar[list[dict[str, str]]] = []

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        raise AssertionError("the engine must call run_batch")

    async def run_batch(
        self, ctxs: Sequence[TaskContext], args: Mapping[str, dict[str, Any]]
    ) -> dict[str, ModuleResult]:
        self.calls.append({c.host.name: args[c.host.name]["value"] for c in ctxs})
        return {
            c.host.name: ModuleResult(
                changed=True, failed=c.host.name == "h3", msg=args[c.host.name]["value"]
            )
            for c in ctxs
        }


@pytest.fixture
def batch_probe() -> Any:
    BatchProbe.calls.clear()
    registry.register(BatchProbe)
    yield BatchProbe
    registry.unregister(BatchProbe.name)


async def test_batch_module_gets_every_host_of_the_step_at_once(
    run_pb: RunFn, batch_probe: Any
) -> None:
    result, rec = await run_pb(
        """
        - hosts: all
          tasks:
            - name: deploy
              batch_probe: {value: "rev-{{ inventory_hostname }}"}
              when: inventory_hostname != 'h2'
              register: out
            - name: show
              debug: msg="{{ out.msg }}"
        """,
        forks=1,
    )
    assert batch_probe.calls == [{"h1": "rev-h1", "h3": "rev-h3"}]
    assert rec.status("deploy") == {"h2": "skipped", "h1": "changed", "h3": "failed"}
    assert rec.ran("show") == ["h1", "h2"]
    assert result.exit_code == 2


def test_pool_picks_one_transport_per_kind(make_inventory: Callable[..., Inventory]) -> None:
    inv = make_inventory(2)
    pool = TransportPool(inv)
    t1 = pool.for_host(inv.hosts["h1"])
    assert isinstance(t1, LocalTransport)
    assert pool.for_host(inv.hosts["h2"]) is t1
    assert pool.local() is t1
    ssh_host = Host(name="s", tier="test", transport="ssh")
    assert type(pool.for_host(ssh_host)).__name__ == "SshTransport"
    with pytest.raises(TransportUnavailable):
        pool.for_kind("carrier-pigeon")


async def test_pool_closes_what_it_created(make_inventory: Callable[..., Inventory]) -> None:
    closed: list[str] = []

    class Mine(LocalTransport):
        async def close(self) -> None:
            closed.append("mine")

    inv = make_inventory(1)
    pool = TransportPool(inv, overrides={"ssh": Mine(inv)})
    pool.local()
    await pool.close()
    assert closed == []  # given transports belong to the caller


async def test_local_transport_runs_argv_without_a_shell(
    make_inventory: Callable[..., Inventory],
) -> None:
    inv = make_inventory(1)
    t = LocalTransport(inv)
    res = await t.run(inv.hosts["h1"], ["echo", "$HOME", "; ls"])
    assert res.rc == 0 and res.stdout == "$HOME ; ls\n"
    res = await t.run(inv.hosts["h1"], ["sh", "-c", "exit 3"])
    assert res.rc == 3
    res = await t.run(inv.hosts["h1"], ["sleep", "5"], timeout=0.2)
    assert res.timed_out
    res = await t.run(inv.hosts["h1"], ["/no/such/program"])
    assert res.rc == 127
