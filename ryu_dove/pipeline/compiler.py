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
from ryu_dove.pipeline.parts import network, tunnels
from ryu_dove.pipeline.parts.common import GATEWAY_MAC
from ryu_dove.pipeline.parts.defaults import DEFAULTS
from ryu_dove.pipeline.parts.network import NetworkPart
from ryu_dove.pipeline.parts.port_security import endpoint_flows
from ryu_dove.pipeline.switchflows import PartKey, SwitchFlows
from ryu_dove.policy import Network, Policy

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
        parts.update(self._tunnel_parts(hv))
        return parts

    def _tunnel_parts(self, hv: Hypervisor) -> dict[PartKey, FlowMap]:
        """OUT_TUNNEL flows to each hypervisor hv shares a network with (and has a port to)."""
        keys: dict[str, int] = {}
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
