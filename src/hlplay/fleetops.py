"""Fleet operations the CLI and the MCP server share: resolve, deploy, diff, generations.

Each sends one request to every selected host through its own transport
(listener, SSH, or in-process for local hosts) and reads what the hosts
answer: nothing here describes a host from the controller's side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hlplay.errors import OptionsError


async def resolve_revision(inv: Any, revision: str | None) -> str:
    from hlplay import gitrepo
    from hlplay.nix.flakeref import local_repo
    from hlplay.protocol.messages import ProtocolError, validate_revision

    if revision is not None:
        try:
            return validate_revision(revision)
        except ProtocolError as exc:
            raise OptionsError(f"--revision {revision!r}: {exc.message}") from None
    repo = local_repo(inv.settings.nix.flake)
    if repo is None:
        return "HEAD"
    try:
        return await gitrepo.resolve(repo)
    except gitrepo.GitError as exc:
        raise OptionsError(f"cannot resolve HEAD of the flake: {exc}") from None


async def deploy_all(
    inv: Any, hosts: Sequence[str], request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send ``request`` to every host through its transport (local hosts in-process)."""
    import asyncio

    from hlplay.transports.base import DeployOutcome, NotSupported, Unreachable

    remote = [inv.hosts[h] for h in hosts]
    jobs: list[Any] = []
    pool = None
    if remote:
        from hlplay.transports.factory import TransportPool

        pool = TransportPool(inv)
        by_kind: dict[str, list[Any]] = {}
        for h in remote:
            by_kind.setdefault(h.transport, []).append(h)
        for kind, group in by_kind.items():

            async def one(kind: str = kind, group: list[Any] = group) -> dict[str, Any]:
                try:
                    transport = pool.for_kind(kind)
                    return await transport.deploy(group, request, timeout=timeout)
                except (NotSupported, Unreachable) as exc:
                    status = "unreachable" if isinstance(exc, Unreachable) else "failed"
                    return {h.name: DeployOutcome(h.name, status, None, str(exc)) for h in group}

            jobs.append(one())
    try:
        # every job runs to its end before an error goes up: a task abandoned while
        # it starts a process can hang the event loop's shutdown for good
        parts = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        if pool is not None:
            await pool.close()
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, BaseException):
            raise part
        out.update(part)
    return out


async def diff_hosts(
    inv: Any, hosts: Sequence[str], revision: str | None, timeout: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build ``hosts`` at ``revision`` and diff each against what it runs; nothing is activated.

    Returns the document ``hlplay diff PATTERN --json`` prints (``revision``,
    ``hosts``, ``summary``) and each host's raw :class:`DeployOutcome`.
    """
    import uuid

    rev = await resolve_revision(inv, revision)
    request = {"action": "diff", "revision": rev, "id": uuid.uuid4().hex, "options": {}}
    outcomes = await deploy_all(inv, hosts, request, timeout)
    failed = unreachable = changed = 0
    doc: dict[str, Any] = {"revision": rev, "hosts": {}}
    for name in hosts:
        o = outcomes.get(name)
        if o is None or o.status != "completed":
            status = o.status if o is not None else "failed"
            if status == "unreachable":
                unreachable += 1
            else:
                failed += 1
            message = o.message if o is not None else "no answer"
            error = o.error if o is not None else "internal"
            doc["hosts"][name] = {"status": status, "error": error, "message": message}
            continue
        data = o.data
        is_changed = bool(data.get("changed"))
        changed += is_changed
        doc["hosts"][name] = {
            "status": "changed" if is_changed else "unchanged",
            "generation": data.get("old_generation"),
            "current": data.get("old_path"),
            "new": data.get("path"),
            "summary": data.get("diff_summary"),
            "diff": data.get("diff"),
        }
    total = len(hosts)
    doc["summary"] = {
        "hosts": total,
        "changed": changed,
        "unchanged": total - changed - failed - unreachable,
        "failed": failed,
        "unreachable": unreachable,
    }
    return doc, outcomes


async def host_generations(inv: Any, name: str, pool: Any, timeout: float) -> dict[str, Any]:
    """{"generations": [...], "current": {...}} for one host, or {"error": ...}."""

    from hlplay.transports.base import NotSupported, Unreachable

    host = inv.hosts[name]
    try:
        facts = await pool.for_host(host).facts(host, timeout=timeout)
    except Unreachable as exc:
        return {"transport": host.transport, "unreachable": True, "error": str(exc)}
    except (NotSupported, TimeoutError, OSError) as exc:
        return {"transport": host.transport, "error": str(exc) or type(exc).__name__}
    except Exception as exc:  # one host's failure must not hide the others
        return {"transport": host.transport, "error": f"{type(exc).__name__}: {exc}"}
    system = facts.get("system") if isinstance(facts.get("system"), dict) else {}
    current = {
        k: (system or {}).get(k, facts.get(k))
        for k in ("generation", "revision", "path", "store_path", "age", "generations")
    }
    if current["age"] is None:  # a listener's facts call it generation_age
        current["age"] = facts.get("generation_age")
    out: dict[str, Any] = {"transport": host.transport, "current": current}
    if isinstance(system, dict) and isinstance(system.get("generation_list"), list):
        out["generations"] = system["generation_list"]
    return out


async def rollback_hosts(
    inv: Any, hosts: Sequence[str], generation: int | None, timeout: float
) -> dict[str, Any]:
    """Send ``rollback`` to every host: its previous generation, or ``generation``.

    Returns the document ``hlplay rollback PATTERN --json`` prints (``hosts``,
    ``summary``); each host says where it went from, where to, and at which revision.
    """
    import uuid

    options: dict[str, Any] = {} if generation is None else {"generation": generation}
    # the revision field is required by the protocol; a rollback builds nothing from it
    request = {"action": "rollback", "revision": "HEAD", "id": uuid.uuid4().hex,
               "options": options}  # fmt: skip
    outcomes = await deploy_all(inv, hosts, request, timeout)
    counts = {"rolled_back": 0, "failed": 0, "unreachable": 0}
    doc: dict[str, Any] = {"generation": generation, "hosts": {}}
    for name in hosts:
        o = outcomes.get(name)
        data = (o.data if o is not None else None) or {}
        if o is None or o.status != "completed":
            status = "unreachable" if o is not None and o.status == "unreachable" else "failed"
        else:
            status = "rolled_back"
        counts[status] += 1
        doc["hosts"][name] = {
            "status": status,
            "from_generation": data.get("old_generation"),
            "to_generation": data.get("generation"),
            "revision": data.get("revision"),
            "message": o.message if o is not None else "no answer",
        }
    doc["summary"] = {"hosts": len(hosts), **counts}
    return doc
