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
from typing import Any

from ryu_dove.directory import Directory, Hypervisor
from ryu_dove.pipeline.flows import Flow, FlowMap
from ryu_dove.pipeline.parts import network, routing, tunnels
from ryu_dove.pipeline.parts.classify import routed_ingress
from ryu_dove.pipeline.parts.common import GATEWAY_MAC
from ryu_dove.pipeline.parts.defaults import DEFAULTS
from ryu_dove.pipeline.parts.network import NetworkPart
from ryu_dove.pipeline.parts.port_security import LearnScope, endpoint_flows
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
        # hypervisor -> tenant -> the hosts its lookups send to
        self._route_keys: dict[str, dict[str, dict[str, int]]] = {}
        self._sources: dict[str, frozenset[str]] = {}
        self._shared_lookups: dict[str, routing.SharedLookup] = {}  # network -> its lookup
        # hypervisor -> ("lookup" | "ingress", network) -> (its inputs..., its flows)
        self._lookups: dict[str, dict[PartKey, tuple[Any, Hypervisor, dict[int, Flow]]]] = {}
        # (hypervisor, tenant) -> (the tenant, hv's hosted networks, what hv looks up)
        self._plans: dict[tuple[str, str], tuple[Tenant | None, frozenset[str],
                                                 tuple[tuple[str, Network, bool], ...]]] = {}
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
        self._sources = {}  # network -> hypervisors routing into it, for this call
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
                    self._routing_changed(policy, directory, hv, sw, networks, changed,
                                          checked)
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
        self._lookups = {hv: {k: v for k, v in per_net.items() if k[1] in nets}
                         for hv, per_net in self._lookups.items() if hv in hvs}
        self._plans = {k: v for k, v in self._plans.items() if k[0] in hvs}
        self._shared_lookups = {k: v for k, v in self._shared_lookups.items() if k in nets}
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
        routed, self._route_keys[hv.name] = self._routing_parts(policy, directory, hv, checked)
        parts.update(routed)
        parts.update(self._tunnel_parts(hv))
        return parts

    def _tunnel_parts(self, hv: Hypervisor) -> dict[PartKey, FlowMap]:
        """OUT_TUNNEL flows to each hypervisor hv shares a network with (and has a port to)."""
        keys: dict[str, int] = {}
        for tenant_keys in self._route_keys.get(hv.name, {}).values():
            keys.update(tenant_keys)
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
                         sw: SwitchFlows, networks: Collection[str], changed: set[int],
                         checked: dict[str, NetworkPart]) -> None:
        """Networks routing touches changed: hv's routing parts of their tenants (only) are
        gathered again (lookups whose network part and hv did not change come from the
        cache, and parts that came out the same are kept as they are)."""
        hosted = directory.networks_on(hv.name)
        route_keys = self._route_keys.setdefault(hv.name, {})
        keys_moved = False
        for tenant in sorted({key.partition("/")[0] for key in networks}):
            had = self._planned_parts(hv.name, tenant)
            edits: list[_Edit] = []
            wanted, keys = self._tenant_routing(policy, directory, hv, hosted, tenant, checked,
                                                edits)
            for key, added, removed in edits:  # lookups changed in place: the same object
                if key in sw.parts:
                    sw.changed_in_place(key, added, removed, changed)
            for key in had:
                if key not in wanted and key in sw.parts:
                    sw.replace(key, None, changed)
            for key, flows in wanted.items():
                # Replaced even when equal: the switch must hold the very object the lookup
                # cache holds, which a later change may amend in place.
                if sw.parts.get(key) is not flows:
                    sw.replace(key, flows, changed)
            if keys != route_keys.get(tenant, {}):
                keys_moved = True
                if keys:
                    route_keys[tenant] = keys
                else:
                    route_keys.pop(tenant, None)
        if keys_moved:
            self._refresh_tunnels(hv, sw, changed)

    def _routing_parts(self, policy: Policy, directory: Directory, hv: Hypervisor,
                       checked: dict[str, NetworkPart],
                       ) -> tuple[dict[PartKey, FlowMap], dict[str, dict[str, int]]]:
        """Every routing part hv installs, and per tenant the hypervisors its lookups send
        to."""
        hosted = directory.networks_on(hv.name)
        parts: dict[PartKey, FlowMap] = {}
        keys: dict[str, dict[str, int]] = {}
        for tenant in sorted({n.tenant for k in hosted if (n := policy.network(k)) is not None}):
            tenant_parts, tenant_keys = self._tenant_routing(policy, directory, hv, hosted,
                                                             tenant, checked)
            parts.update(tenant_parts)
            if tenant_keys:
                keys[tenant] = tenant_keys
        return parts, keys

    def _tenant_routing(self, policy: Policy, directory: Directory, hv: Hypervisor,
                        hosted: frozenset[str], tenant: str, checked: dict[str, NetworkPart],
                        edits: list[_Edit] | None = None,
                        ) -> tuple[dict[PartKey, FlowMap], dict[str, int]]:
        """One tenant's routing parts on hv: its routes and rules where hv hosts one of the
        networks they connect; the address lookup of those networks and of the networks
        they route to; tunnel ingress of the hosted ones from the hypervisors routing into
        them. With the hypervisors (but hv) the lookups send to. Everything per network
        is kept per hypervisor and reused while its inputs are the same objects; given
        `edits`, a lookup whose network changed is brought up to date in place when it
        can be (the edit is recorded there), as network parts are."""
        parts: dict[PartKey, FlowMap] = {}
        keys: dict[str, int] = {}
        plan = self._tenant_plan(policy, hv.name, hosted, tenant)
        if plan:
            parts[("tenant", tenant)] = routing.tenant_part(policy, tenant)
        cache = self._lookups.setdefault(hv.name, {})
        for key, net, is_hosted in plan:
            part = self._checked_part(net, directory, checked)
            lookup = cache.get(("lookup", key))
            # Identity for the part and hv: comparing hv's tunnels costs O(hypervisors).
            if lookup is None or lookup[0] is not part or lookup[1] is not hv:
                shared = self._shared_lookup(part)
                amended = None
                if edits is not None and lookup is not None and lookup[1] is hv:
                    amended = routing.amend_lookup(lookup[2], lookup[0], shared, hv.name)
                if amended is not None and lookup is not None and edits is not None:
                    edits.append((("lookup", key), *amended))
                    lookup = cache[("lookup", key)] = (part, hv, lookup[2])
                else:
                    lookup = cache[("lookup", key)] = (part, hv, routing.specialise_lookup(
                        shared, part.local.get(hv.name, ())))
            parts[("lookup", key)] = lookup[2]
            if is_hosted:  # routed packets come in from the hosts of its peer networks
                t = policy.tenants[tenant]
                sources = self._routing_sources(t, net, directory, checked)
                ingress = cache.get(("ingress", key))
                if ingress is None or ingress[1] is not hv or ingress[0] != sources:
                    ingress = cache[("ingress", key)] = (
                        sources, hv, _routed_ingress(net, sources, hv))
                parts[("ingress", key)] = ingress[2]
            keys.update(part.keys)
        for gone in [k for k in cache if k[1].partition("/")[0] == tenant and k not in parts]:
            del cache[gone]
        keys.pop(hv.name, None)
        return parts, keys

    def _planned_parts(self, hv: str, tenant: str) -> list[PartKey]:
        """The routing parts of the tenant hv has now (by its last plan)."""
        cached = self._plans.get((hv, tenant))
        if cached is None:
            return []
        return [("tenant", tenant), *(("lookup", key) for key, _, _ in cached[2]),
                *(("ingress", key) for key, _, hosted in cached[2] if hosted)]

    def _tenant_plan(self, policy: Policy, hv: str, hosted: frozenset[str], tenant: str,
                     ) -> tuple[tuple[str, Network, bool], ...]:
        """The networks of the tenant hv looks up (key, network, hosted on hv): those its
        hosted networks route to, and its hosted networks others route to. Kept while the
        tenant and hv's hosted networks stay the same."""
        t = policy.tenants.get(tenant)
        cached = self._plans.get((hv, tenant))
        if cached is not None and cached[0] is t and cached[1] == hosted:
            return cached[2]
        plan: tuple[tuple[str, Network, bool], ...] = ()
        if t is not None:
            pairs = routing.connected(t)
            needed = {t.networks[dst].key for src, dst in pairs if t.networks[src].key in hosted}
            if needed:
                plan = tuple((key, t.networks[key.partition("/")[2]], key in hosted)
                             for key in sorted(needed | (hosted
                                                         & routing.routed_networks(policy,
                                                                                   tenant))))
        self._plans[(hv, tenant)] = (t, hosted, plan)
        return plan

    def _shared_lookup(self, part: NetworkPart) -> routing.SharedLookup:
        """A network's lookup as every hypervisor but those hosting its members has it
        (with its difference to the one it replaces)."""
        cached = self._shared_lookups.get(part.net.key)
        if cached is None or cached.part is not part:
            cached = self._shared_lookups[part.net.key] = routing.SharedLookup.of(part, cached)
        return cached

    def _routing_sources(self, t: Tenant, net: Network, directory: Directory,
                         checked: dict[str, NetworkPart]) -> frozenset[str]:
        """The hypervisors that route into net: those hosting a network connected to it
        (once per network per call: every switch of the tenant asks)."""
        sources = self._sources.get(net.key)
        if sources is None:
            found: set[str] = set()
            for src in routing.routing_into(t, net.key):
                found.update(self._checked_part(src, directory, checked).hosts)
            sources = self._sources[net.key] = frozenset(found)
        return sources

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
            scope = LearnScope(str(net.subnet), str(net.gateway)) if ep.learning else None
            parts[("endpoint", ep.port)] = endpoint_flows(ep, net.vni, scope)
    return parts


def _touches_routing(policy: Policy, networks: Collection[str]) -> bool:
    """Does a change of these networks concern routing (a tenant with rules)?"""
    for key in networks:
        net = policy.network(key)
        if net is not None and key in routing.routed_networks(policy, net.tenant):
            return True
    return False


_Edit = tuple[PartKey, FlowMap, Iterable[int]]  # a part changed in place: added, removed


def _routed_ingress(net: Network, sources: frozenset[str], hv: Hypervisor) -> dict[int, Flow]:
    """Tunnel ingress for a hosted network from the hypervisors that route into it (they
    need not host it themselves)."""
    flows: dict[int, Flow] = {}
    for remote in sorted(sources - {hv.name}):
        port = hv.tunnels.get(remote)
        if port is not None:
            f = routed_ingress(net.vni, port)
            flows[f.cookie] = f
    return flows
