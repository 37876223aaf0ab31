"""A network's part: what every hypervisor hosting the network installs alike, and how one
hypervisor specialises it (its own members delivered locally, its flood lists).

Rebuilt when the network's members (or their TEPs) change, a part carries its difference to
the part it replaces, so that hypervisors whose own ports did not change apply that
difference instead of rebuilding (ryu_dove.pipeline.compiler).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from ryu_dove.directory import Endpoint, Hypervisor
from ryu_dove.pipeline.flows import Flow, FlowMap
from ryu_dove.pipeline.parts.arp import arp_miss, arp_reply
from ryu_dove.pipeline.parts.classify import tunnel_classify
from ryu_dove.pipeline.parts.common import GATEWAY_MAC, is_ipv4
from ryu_dove.pipeline.parts.l2 import flood, local_unicast, remote_unicast
from ryu_dove.pipeline.parts.neighbour import nd_miss, nd_reply
from ryu_dove.policy import Network

_SERIALS = itertools.count(1)


@dataclass(frozen=True, eq=False)
class NetworkPart:
    """What every hypervisor hosting one network installs alike, and what it needs to
    specialise it. Rebuilt when the network's members (or their TEPs) change; it then
    carries the difference to the part it replaces, so that hypervisors whose own ports
    did not change apply that difference instead of rebuilding."""

    net: Network
    members: tuple[Endpoint, ...]  # the directory's order: (hypervisor, port)
    keys: tuple[tuple[str, int], ...]  # hosting hypervisor -> its remote key
    shared: FlowMap
    remote_unicast: Mapping[str, Flow]  # MAC -> its unicast flow in `shared`
    local: Mapping[str, tuple[Endpoint, ...]]  # hypervisor -> its members
    addressless: frozenset[str]  # hypervisors with a member bound without addresses
    claims: Mapping[str, int]  # how many members have each MAC and each address
    serial: int = field(default_factory=lambda: next(_SERIALS))  # unique among all parts
    base: int | None = None  # the serial of the part `added` and `removed` are relative to
    added: FlowMap = field(default_factory=dict)  # shared flows new since the base part
    removed: frozenset[int] = frozenset()  # shared cookies gone since the base part

    @property
    def hosts(self) -> Iterator[str]:
        return (name for name, _ in self.keys)

    def successor(self, members: tuple[Endpoint, ...],
                  keys: tuple[tuple[str, int], ...]) -> NetworkPart:
        """The part for new members, with the difference to this one: worked out from the
        members that came and went when that is exact (the same hosts, and no MAC or
        address any other member has: then no "first member wins" rule can change who
        answers), rebuilt from all members otherwise."""
        new = self._amended(members, keys) if keys == self.keys else None
        if new is None:
            new = build_part(self.net, members, keys)
        added = {c: f for c, f in new.shared.items() if c not in self.shared}
        removed = frozenset(c for c in self.shared if c not in new.shared)
        return replace(new, base=self.serial, added=added, removed=removed)

    def _amended(self, members: tuple[Endpoint, ...],
                 keys: tuple[tuple[str, int], ...]) -> NetworkPart | None:
        now = {id(ep) for ep in members}
        before = {id(ep) for ep in self.members}
        gone = [ep for ep in self.members if id(ep) not in now]
        came = [ep for ep in members if id(ep) not in before]
        claims = dict(self.claims)
        gateway = str(self.net.gateway)  # answered for the gateway whoever else claims it
        for ep in gone:
            for claim in (ep.mac, *ep.ips):
                if claims.get(claim) != 1 or claim == gateway:
                    return None  # it shared a MAC or address: who wins may change
                del claims[claim]
        for ep in came:
            for claim in (ep.mac, *ep.ips):
                if claim in claims or claim == gateway:
                    return None
                claims[claim] = 1
        vni, key_of = self.net.vni, dict(keys)
        shared, unicast = dict(self.shared), dict(self.remote_unicast)
        for ep in gone:
            for f in _endpoint_shared(vni, ep, key_of.get(ep.hypervisor)):
                shared.pop(f.cookie, None)
            unicast.pop(ep.mac, None)
        for ep in came:
            for f in _endpoint_shared(vni, ep, key_of.get(ep.hypervisor)):
                shared[f.cookie] = f
            if ep.hypervisor in key_of:
                unicast[ep.mac] = remote_unicast(vni, ep.mac, key_of[ep.hypervisor])
        local = dict(self.local)
        for hv in {ep.hypervisor for ep in (*gone, *came)}:
            mine = tuple(ep for ep in members if ep.hypervisor == hv)
            if mine:
                local[hv] = mine
            else:
                local.pop(hv, None)
        return NetworkPart(self.net, members, keys, shared, unicast, local,
                           _addressless(members), claims)


def _endpoint_shared(vni: int, ep: Endpoint, rkey: int | None) -> Iterator[Flow]:
    """The shared flows one member brings when no other member has its MAC or addresses."""
    for ip in ep.ips:
        yield from _answer(vni, ip, ep.mac)
    if rkey is not None:
        yield remote_unicast(vni, ep.mac, rkey)


def _answer(vni: int, ip: str, mac: str, router: bool = False) -> tuple[Flow, ...]:
    """The responder's flows answering for one address: ARP or neighbour discovery."""
    return arp_reply(vni, ip, mac) if is_ipv4(ip) else (nd_reply(vni, ip, mac, router),)


def _addressless(members: tuple[Endpoint, ...]) -> frozenset[str]:
    return frozenset(ep.hypervisor for ep in members if not ep.ips)


def build_part(net: Network, members: tuple[Endpoint, ...],
               keys: tuple[tuple[str, int], ...]) -> NetworkPart:
    """If the directory ever holds one MAC or address twice (bindings refuse that, but a
    replicated directory may briefly disagree), the first member wins everywhere: the gateway
    over any VM, then (hypervisor, port) order; a hypervisor prefers its own port for a MAC."""
    key_of = dict(keys)
    shared: dict[int, Flow] = {}
    unicast: dict[str, Flow] = {}
    local: dict[str, list[Endpoint]] = {}
    answered = {str(net.gateway)}
    for f in _answer(net.vni, str(net.gateway), GATEWAY_MAC, router=True):
        shared[f.cookie] = f
    for ep in members:
        local.setdefault(ep.hypervisor, []).append(ep)
        for ip in ep.ips:
            if ip not in answered:
                answered.add(ip)
                for f in _answer(net.vni, ip, ep.mac):
                    shared[f.cookie] = f
        rkey = key_of.get(ep.hypervisor)
        if ep.mac not in unicast and rkey is not None:
            f = remote_unicast(net.vni, ep.mac, rkey)
            unicast[ep.mac] = f
            shared[f.cookie] = f
    claims: dict[str, int] = {}
    for ep in members:
        for claim in (ep.mac, *ep.ips):
            claims[claim] = claims.get(claim, 0) + 1
    return NetworkPart(net, members, keys, shared, unicast,
                       {hv: tuple(eps) for hv, eps in local.items()}, _addressless(members),
                       claims)


def specialise(part: NetworkPart, hv: Hypervisor) -> dict[int, Flow]:
    """The shared part as this hypervisor installs it: its own members delivered locally."""
    vni = part.net.vni
    flows = dict(part.shared)
    local_ports: list[int] = []
    delivered: set[str] = set()
    for ep in part.local.get(hv.name, ()):
        local_ports.append(ep.ofport)
        if ep.mac in delivered:
            continue
        delivered.add(ep.mac)
        remote = part.remote_unicast.get(ep.mac)
        if remote is not None:
            del flows[remote.cookie]
        f = local_unicast(vni, ep.mac, ep.ofport)
        flows[f.cookie] = f
    tunnels = tuple(hv.tunnels[r] for r in part.hosts if r != hv.name and r in hv.tunnels)
    for f in flood(vni, tuple(local_ports), tunnels):
        flows[f.cookie] = f
    for port in tunnels:  # tunnel ingress: only from the hypervisors hosting the network
        f = tunnel_classify(vni, port)
        flows[f.cookie] = f
    # Only a VM bound without addresses can answer an ARP the responder cannot.
    askable = tuple(hv.tunnels[r] for r in sorted(part.addressless)
                    if r != hv.name and r in hv.tunnels)
    miss = arp_miss if part.net.subnet.version == 4 else nd_miss
    for f in miss(vni, tuple(local_ports), askable):
        flows[f.cookie] = f
    return flows


def apply_difference(flows: dict[int, Flow], part: NetworkPart, hv: str,
                     ) -> tuple[dict[int, Flow], list[int]]:
    """Bring `flows` (specialise() of `part`'s base part, for a hypervisor whose own
    members and whose hosts did not change) to `part` in place; returns what was added and
    the cookies removed. Local members keep local delivery: their remote unicast stays out."""
    local = {part.remote_unicast[ep.mac].cookie for ep in part.local.get(hv, ())
             if ep.mac in part.remote_unicast}
    removed = [c for c in part.removed if flows.pop(c, None) is not None]
    added = {c: f for c, f in part.added.items() if c not in local and c not in flows}
    flows.update(added)
    return added, removed
