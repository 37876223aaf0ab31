"""The desired flows of every hypervisor's br-int, kept up to date incrementally.

`compile_switch(policy, directory, hv)` is the whole computation for one switch, pure (no
I/O, no clock); the parts it is made of are in ryu_dove.pipeline.parts. The engine uses a
long-lived `Compiler` instead, which gives the same result (a property test holds it to
that) at a cost proportional to what changed:
- a network's shared part is rebuilt once per change of its members, whatever number of
  hypervisors host it, and carries its difference to the previous one;
- a hypervisor told that only some networks changed (another hypervisor's endpoint came or
  went) applies each network's difference to its flows, unless its own members or the
  network's hosts changed, which rebuild that network's part for it;
- every switch's flows are a SwitchFlows, which reports the cookies that moved.
Stages and registers: ryu_dove.pipeline.stages and docs/pipeline.md.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from ryu_dove.directory import Directory, Hypervisor
from ryu_dove.pipeline.flows import Flow, FlowMap
from ryu_dove.pipeline.parts import network, routing, tunnels
from ryu_dove.pipeline.parts.classify import routed_ingress
from ryu_dove.pipeline.parts.common import GATEWAY_MAC
from ryu_dove.pipeline.parts.defaults import DEFAULTS
from ryu_dove.pipeline.parts.network import NetworkPart
from ryu_dove.pipeline.parts.port_security import endpoint_flows
from ryu_dove.pipeline.switchflows import PartKey, SwitchFlows
from ryu_dove.policy import Network, Policy, Tenant

__all__ = ["GATEWAY_MAC", "Compiler", "compile_switch"]

Work = Mapping[str, Collection[str] | None]  # hypervisor -> networks that changed; None: all


def compile_switch(policy: Policy, directory: Directory, hypervisor: str) -> frozenset[Flow]:
    """Every flow of one hypervisor's br-int (empty if the hypervisor is unknown)."""
    return frozenset(Compiler().switch(policy, directory, hypervisor).values())


@dataclass
class _HvPart:
    """A network's part as one hypervisor installs it, and what it was derived from."""

    part: NetworkPart
    hv: Hypervisor
    flows: dict[int, Flow]


class Compiler:
    def __init__(self) -> None:
        self._parts: dict[str, NetworkPart] = {}
        self._hv_parts: dict[str, dict[str, _HvPart]] = {}  # hypervisor -> its networks
        self._route_keys: dict[str, dict[str, int]] = {}  # hypervisor -> hosts it routes to
        self._switches: dict[str, SwitchFlows] = {}

    def switch(self, policy: Policy, directory: Directory, name: str) -> dict[int, Flow]:
        """One switch's flows, all recomputed (a copy)."""
        (_, sw, _), = self.switches(policy, directory, {name: None})
        return dict(sw.flows)

    def switches(self, policy: Policy, directory: Directory, work: Work,
                 local: Collection[str] = (),
                 ) -> Iterator[tuple[str, SwitchFlows, set[int]]]:
        """Bring each switch of `work` up to date: (name, its flows, the cookies that moved).
        `local` names the hypervisors whose own endpoints changed (their work then names
        the networks those endpoints are or were in). Each network's part is checked
        against the directory once per call."""
        checked: dict[str, NetworkPart] = {}
        for name, networks in work.items():
            sw = self._switches.setdefault(name, SwitchFlows())
            hv = directory.hypervisor(name)
            if hv is None:
                changed = sw.update({})
            elif networks is None or not sw.parts:
                changed = sw.update(self._all_parts(policy, directory, hv, checked))
            else:
                changed = set()
                if name in local:
                    self._endpoints_changed(policy, directory, hv, sw, changed)
                self._networks_changed(policy, directory, hv, sw, networks, checked, changed)
                if _touches_routing(policy, networks):
                    self._routing_changed(policy, directory, hv, sw, changed)
            yield name, sw, changed

    def network_part(self, net: Network, directory: Directory) -> NetworkPart:
        members = directory.endpoints(net.key)
        keys = tunnels.host_keys(members, directory)
        old = self._parts.get(net.key)
        if old is not None and old.members == members and old.keys == keys:
            if old.net == net:
                return old
            old = None  # the network itself changed (policy): no difference to offer
        part = (old.successor(members, keys) if old is not None
                else network.build_part(net, members, keys))
        self._parts[net.key] = part
        return part

    def forget(self, live_networks: Iterable[str], live_hypervisors: Iterable[str]) -> None:
        """Drop what belongs to networks and hypervisors that are gone (memory only)."""
        nets, hvs = set(live_networks), set(live_hypervisors)
        self._parts = {k: p for k, p in self._parts.items() if k in nets}
        self._hv_parts = {hv: {k: v for k, v in per_net.items() if k in nets}
                          for hv, per_net in self._hv_parts.items() if hv in hvs}
        self._route_keys = {k: v for k, v in self._route_keys.items() if k in hvs}
        self._switches = {k: v for k, v in self._switches.items() if k in hvs}

    # --- one switch, whole ----------------------------------------------------------------

    def _all_parts(self, policy: Policy, directory: Directory, hv: Hypervisor,
                   checked: dict[str, NetworkPart]) -> dict[PartKey, FlowMap]:
        parts: dict[PartKey, FlowMap] = {("defaults", ""): DEFAULTS}
        parts.update(_endpoint_parts(policy, directory, hv))
        hosted: dict[str, _HvPart] = {}
        for key in directory.networks_on(hv.name):
            net = policy.network(key)
            if net is not None:
                part = self._checked_part(net, directory, checked)
                hosted[key] = self._rebuilt(part, hv)
                parts[("network", key)] = hosted[key].flows
        self._hv_parts[hv.name] = hosted  # networks no longer hosted are dropped here
        routed, self._route_keys[hv.name] = _routing_parts(policy, directory, hv)
        parts.update(routed)
        parts.update(self._tunnel_parts(hv))
        return parts

    def _tunnel_parts(self, hv: Hypervisor) -> dict[PartKey, FlowMap]:
        """OUT_TUNNEL flows to each hypervisor hv shares a network with (and has a port to)."""
        keys: dict[str, int] = dict(self._route_keys.get(hv.name, {}))
        for hv_part in self._hv_parts.get(hv.name, {}).values():
            keys.update(hv_part.part.keys)
        parts: dict[PartKey, FlowMap] = {}
        for remote, rkey in keys.items():
            ofport = hv.tunnels.get(remote)
            if remote != hv.name and ofport is not None:
                parts[("tunnel", remote)] = tunnels.to_tunnel(rkey, ofport)
        return parts

    # --- one switch, some networks ----------------------------------------------------------

    def _endpoints_changed(self, policy: Policy, directory: Directory, hv: Hypervisor,
                           sw: SwitchFlows, changed: set[int]) -> None:
        """hv's own endpoints changed: replace the endpoint parts that differ."""
        wanted = _endpoint_parts(policy, directory, hv)
        for key in [k for k in sw.parts if k[0] == "endpoint" and k not in wanted]:
            sw.replace(key, None, changed)
        for key, flows in wanted.items():
            if sw.parts.get(key) is not flows:
                sw.replace(key, flows, changed)

    def _networks_changed(self, policy: Policy, directory: Directory, hv: Hypervisor,
                          sw: SwitchFlows, networks: Collection[str],
                          checked: dict[str, NetworkPart], changed: set[int]) -> None:
        """Only these networks changed, not hv itself (the engine asks for a whole switch
        then). A network hv has just joined or left is added or removed here."""
        hosts_moved = False
        hosted = self._hv_parts.setdefault(hv.name, {})
        for key in networks:
            cached = hosted.get(key)
            net = policy.network(key)
            part = self._checked_part(net, directory, checked) if net is not None else None
            if part is None or hv.name not in part.local:  # not (or no longer) hosted here
                if cached is not None:
                    del hosted[key]
                    sw.replace(("network", key), None, changed)
                    hosts_moved = True
                continue
            if cached is None:  # newly hosted here
                hosted[key] = self._rebuilt(part, hv)
                sw.replace(("network", key), hosted[key].flows, changed)
                hosts_moved = True
                continue
            if part is cached.part:
                continue
            if (cached.hv is hv and part.base == cached.part.serial
                    and part.keys == cached.part.keys
                    and part.addressless == cached.part.addressless
                    and part.local.get(hv.name) == cached.part.local.get(hv.name)):
                added, removed = network.apply_difference(cached.flows, part, hv.name)
                cached.part = part
                sw.changed_in_place(("network", key), added, removed, changed)
            else:
                hosts_moved |= part.keys != cached.part.keys
                hosted[key] = self._rebuilt(part, hv)
                sw.replace(("network", key), hosted[key].flows, changed)
        if hosts_moved:
            self._refresh_tunnels(hv, sw, changed)

    def _routing_changed(self, policy: Policy, directory: Directory, hv: Hypervisor,
                         sw: SwitchFlows, changed: set[int]) -> None:
        """A network routing touches changed: hv's routing parts are recomputed (those that
        came out the same are kept as they are)."""
        wanted, keys = _routing_parts(policy, directory, hv)
        for key in [k for k in sw.parts if k[0] in _ROUTING_PARTS and k not in wanted]:
            sw.replace(key, None, changed)
        for key, flows in wanted.items():
            if sw.parts.get(key) != flows:
                sw.replace(key, flows, changed)
        if keys != self._route_keys.get(hv.name):
            self._route_keys[hv.name] = keys
            self._refresh_tunnels(hv, sw, changed)

    def _refresh_tunnels(self, hv: Hypervisor, sw: SwitchFlows, changed: set[int]) -> None:
        """The hosts of hv's networks changed: its OUT_TUNNEL parts follow."""
        wanted = self._tunnel_parts(hv)
        for gone in [k for k in sw.parts if k[0] == "tunnel" and k not in wanted]:
            sw.replace(gone, None, changed)
        for tunnel, flows in wanted.items():
            sw.replace(tunnel, flows, changed)

    # --- network parts ------------------------------------------------------------------

    def _checked_part(self, net: Network, directory: Directory,
                      checked: dict[str, NetworkPart]) -> NetworkPart:
        part = checked.get(net.key)
        if part is None:
            part = checked[net.key] = self.network_part(net, directory)
        return part

    def _rebuilt(self, part: NetworkPart, hv: Hypervisor) -> _HvPart:
        """The network's part for hv, reused while neither the part nor hv changed."""
        cached = self._hv_parts.get(hv.name, {}).get(part.net.key)
        # Identity, not equality: comparing tunnel maps costs O(hypervisors) per lookup.
        if cached is not None and cached.part is part and cached.hv is hv:
            return cached
        return _HvPart(part, hv, network.specialise(part, hv))


def _endpoint_parts(policy: Policy, directory: Directory, hv: Hypervisor,
                    ) -> dict[PartKey, FlowMap]:
    """The own part of each endpoint bound on hv (in a network the policy knows)."""
    parts: dict[PartKey, FlowMap] = {}
    for ep in directory.endpoints_on(hv.name):
        net = policy.network(ep.network)
        if net is not None:
            parts[("endpoint", ep.port)] = endpoint_flows(ep, net.vni)
    return parts


_ROUTING_PARTS = ("tenant", "lookup")


def _touches_routing(policy: Policy, networks: Collection[str]) -> bool:
    """Does a change of these networks concern routing (a tenant with rules)?"""
    for key in networks:
        net = policy.network(key)
        if net is not None and key in routing.routed_networks(policy, net.tenant):
            return True
    return False


def _routing_parts(policy: Policy, directory: Directory, hv: Hypervisor,
                   ) -> tuple[dict[PartKey, FlowMap], dict[str, int]]:
    """The routing parts hv installs: each tenant's routes and rules where hv hosts one of
    the networks they connect, and the address lookup of those networks and of the
    networks they route to; with the hypervisors those lookups send to."""
    hosted = directory.networks_on(hv.name)
    parts: dict[PartKey, FlowMap] = {}
    keys: dict[str, int] = {}
    for tenant in sorted({n.tenant for k in hosted if (n := policy.network(k)) is not None}):
        t = policy.tenants[tenant]
        pairs = routing.connected(t)
        needed = {t.networks[dst].key for src, dst in pairs if t.networks[src].key in hosted}
        if not needed:
            continue
        parts[("tenant", tenant)] = routing.tenant_part(policy, tenant)
        for key in sorted(needed | (hosted & routing.routed_networks(policy, tenant))):
            net = policy.network(key)
            assert net is not None  # (a network of the tenant)
            members = directory.endpoints(key)
            net_keys = tunnels.host_keys(members, directory)
            part = dict(routing.lookup_part(net, members, hv, dict(net_keys)))
            if key in hosted:  # routed packets come in from the hosts of its peer networks
                part.update(_routed_ingress(t, net, directory, hv))
            parts[("lookup", key)] = part
            keys.update(net_keys)
    keys.pop(hv.name, None)
    return parts, keys


def _routed_ingress(t: Tenant, net: Network, directory: Directory, hv: Hypervisor,
                    ) -> dict[int, Flow]:
    """Tunnel ingress for a hosted network from the hypervisors that route into it (they
    need not host it themselves)."""
    sources: set[str] = set()
    for src, dst in routing.connected(t):
        if t.networks[dst].key == net.key:
            sources |= directory.hosting(t.networks[src].key)
    flows: dict[int, Flow] = {}
    for remote in sorted(sources - {hv.name}):
        port = hv.tunnels.get(remote)
        if port is not None:
            f = routed_ingress(net.vni, port)
            flows[f.cookie] = f
    return flows
