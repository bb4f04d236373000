"""nats-server topology blocks: clustering, leaf nodes and JetStream.

A fleet that outgrows one server scales the way NATS does — a cluster of
servers sharing one authorization config, leaf nodes for sites that connect
out to a hub, JetStream where persistence is wanted — never with a broker or
queue of hlplay's own. These render the blocks appended to the authorization
config from :func:`hlplay.auth.natsconfig.render_config`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hlplay.auth.keys import is_user_public_key
from hlplay.errors import OptionsError

_HOSTPORT = re.compile(r"^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$")
_URL = re.compile(r"^(nats|nats-route|nats-leaf|tls|ws|wss)://[A-Za-z0-9_.:@\[\]-]+(:\d{1,5})?$")


@dataclass
class Topology:
    cluster_name: str | None = None
    cluster_listen: str | None = None  # host:port where this server takes routes
    routes: list[str] = field(default_factory=list)  # nats-route://host:port of the peers
    leaf_listen: str | None = None  # host:port where this hub takes leaf nodes
    leaf_remotes: list[str] = field(default_factory=list)  # nats-leaf://hub:port to connect to
    leaf_nkey: str | None = None  # hub: the NKey user public key leaf nodes must sign with
    leaf_seed: str | None = None  # site: the NKey seed it signs with (the config is 0600)
    jetstream_dir: str | None = None

    def validate(self) -> None:
        listens = (("cluster listen", self.cluster_listen), ("leaf listen", self.leaf_listen))
        for what, value in listens:
            if value is not None and not _HOSTPORT.match(value):
                raise OptionsError(f"{what} address must be HOST:PORT, got {value!r}")
        for url in [*self.routes, *self.leaf_remotes]:
            if not _URL.match(url):
                raise OptionsError(f"not a NATS URL: {url!r}")
        if self.leaf_nkey is not None and not is_user_public_key(self.leaf_nkey):
            raise OptionsError("the leaf node key must be an NKey user public key (U…)")
        if self.leaf_seed is not None and not self.leaf_seed.startswith("SU"):
            raise OptionsError("the leaf node seed must be an NKey user seed (SU…)")
        if (self.routes or self.cluster_listen) and not (self.cluster_name and self.cluster_listen):
            raise OptionsError("a cluster needs both --cluster-name and --cluster-listen")


def render_topology(topo: Topology) -> str:
    """The cluster / leafnodes / jetstream blocks (empty when none are asked for)."""
    topo.validate()
    out: list[str] = []
    if topo.cluster_name and topo.cluster_listen:
        out += [
            "cluster {",
            f"  name: {json.dumps(topo.cluster_name)}",
            f"  listen: {json.dumps(topo.cluster_listen)}",
            f"  routes: [{', '.join(json.dumps(r) for r in topo.routes)}]",
            "}",
        ]
    if topo.leaf_listen or topo.leaf_remotes:
        out.append("leafnodes {")
        if topo.leaf_listen:
            out.append(f"  listen: {json.dumps(topo.leaf_listen)}")
            if topo.leaf_nkey:
                out.append(f"  authorization {{ nkey: {json.dumps(topo.leaf_nkey)} }}")
        if topo.leaf_remotes:
            seed = f", nkey: {json.dumps(topo.leaf_seed)}" if topo.leaf_seed else ""
            remotes = [f"{{ url: {json.dumps(url)}{seed} }}" for url in topo.leaf_remotes]
            out.append(f"  remotes: [{', '.join(remotes)}]")
        out.append("}")
    if topo.jetstream_dir:
        out += ["jetstream {", f"  store_dir: {json.dumps(topo.jetstream_dir)}", "}"]
    return "\n".join(out) + ("\n" if out else "")


def topology_from_options(
    cluster_name: str | None,
    cluster_listen: str | None,
    routes: Sequence[str],
    leaf_listen: str | None,
    leaf_remotes: Sequence[str],
    jetstream_dir: str | None,
    leaf_nkey: str | None = None,
    leaf_seed_file: str | None = None,
) -> Topology:
    from hlplay.auth.keys import read_seed

    return Topology(
        cluster_name=cluster_name,
        cluster_listen=cluster_listen,
        routes=list(routes),
        leaf_listen=leaf_listen,
        leaf_remotes=list(leaf_remotes),
        jetstream_dir=jetstream_dir,
        leaf_nkey=leaf_nkey,
        leaf_seed=read_seed(leaf_seed_file) if leaf_seed_file else None,
    )
