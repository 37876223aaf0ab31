"""The flows of the pipeline, as parts that a switch's flow set is the union of.

Pure builders, no state: ryu_dove.pipeline.compiler decides which parts a switch needs and
keeps them between changes. A switch's flows are the union of:
- DEFAULTS: every stage's table-miss drop, the same everywhere;
- endpoint_flows(): per local endpoint, its classification and port security;
- per network it hosts, the network's shared part (build_part(): tunnel classification, ARP
  answers and a unicast flow for every member MAC naming the member's hypervisor in
  REG_REMOTE), identical on every hypervisor hosting the network, as specialise() adapts it:
  its own members delivered locally, its flood flows, and where ARP requests nobody can
  answer may go (not over the underlay, unless a VM bound without addresses is there);
- to_tunnel(): per remote hypervisor it shares a network with, the OUT_TUNNEL flow to the
  tunnel port.
Because the shared part names hypervisors by key instead of by a switch's tunnel ofport, one
endpoint's flows are the same objects (same cookie, same encoded bytes) on every hypervisor.
The builders are memoised, so each distinct flow is built, checked and encoded once.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from ryu_dove.directory import Directory, Endpoint, Hypervisor
from ryu_dove.pipeline.flows import (
    IN_PORT,
    Action,
    Flow,
    FlowMap,
    MatchValue,
    Move,
    Output,
    SetField,
    check_flow,
    flow,
)
from ryu_dove.pipeline.stages import REG_FROM_TUNNEL, REG_NETWORK, REG_REMOTE, Stage
from ryu_dove.policy import Network
from ryu_dove.tunnel_ids import remote_key

GATEWAY_MAC = "02:d0:ee:00:00:01"  # answers ARP for every network's gateway address
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
IPV6_LINK_LOCAL = ("fe80::", "ffc0::")
IPV6_UNSPECIFIED = "::"

# Priorities inside a stage: specific before general; 0 is each stage's default.
P_DEFAULT, P_NORMAL, P_SPECIFIC = 0, 100, 110
P_ARP_MISS = 10  # under every answer, over the stage's default
MEMO = 1 << 18  # distinct flows kept per builder; a miss costs one rebuild

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
                unicast[ep.mac] = _remote_unicast(vni, ep.mac, key_of[ep.hypervisor])
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
        if _is_ipv4(ip):
            yield from _arp_reply(vni, ip, ep.mac)
    if rkey is not None:
        yield _remote_unicast(vni, ep.mac, rkey)


def _addressless(members: tuple[Endpoint, ...]) -> frozenset[str]:
    return frozenset(ep.hypervisor for ep in members if not ep.ips)


def host_keys(members: tuple[Endpoint, ...], directory: Directory) -> tuple[tuple[str, int], ...]:
    keys = {}
    for ep in members:
        if ep.hypervisor not in keys:
            hv = directory.hypervisor(ep.hypervisor)
            if hv is not None:
                keys[ep.hypervisor] = remote_key(hv.tep_ip)
    return tuple(sorted(keys.items()))


# --- parts ---------------------------------------------------------------------------------

def _defaults() -> Iterator[Flow]:
    yield flow(Stage.IN_CLASSIFY, P_DEFAULT)  # unknown port, MAC or VNI: drop
    yield flow(Stage.IN_PORT_SEC, P_DEFAULT)  # spoofed source: drop
    yield flow(Stage.IN_ARP_RESPONDER, P_DEFAULT, goto=Stage.IN_L2_LOOKUP)
    yield flow(Stage.IN_L2_LOOKUP, P_DEFAULT)  # unknown destination: drop
    yield flow(Stage.OUT_TUNNEL, P_DEFAULT)  # no tunnel to that hypervisor (yet): drop


def _is_ipv4(ip: str) -> bool:
    """Endpoint addresses are in ipaddress's canonical text (ryu_dove.directory.bindings):
    no parsing."""
    return ":" not in ip


def _check(f: Flow) -> Flow:
    check_flow(f)  # once per distinct flow: the builders below are memoised
    return f


def _checked(flows: Iterable[Flow]) -> FlowMap:
    return {f.cookie: _check(f) for f in flows}  # read-only by contract; dicts merge fastest


DEFAULTS: FlowMap = _checked(_defaults())


def build_part(net: Network, members: tuple[Endpoint, ...],
               keys: tuple[tuple[str, int], ...]) -> NetworkPart:
    """If the directory ever holds one MAC or address twice (bindings refuse that, but a
    replicated directory may briefly disagree), the first member wins everywhere: the gateway
    over any VM, then (hypervisor, port) order; a hypervisor prefers its own port for a MAC."""
    key_of = dict(keys)
    shared: dict[int, Flow] = {}
    unicast: dict[str, Flow] = {}
    local: dict[str, list[Endpoint]] = {}
    classify = _tunnel_classify(net.vni)
    shared[classify.cookie] = classify
    answered = {str(net.gateway)}
    if net.gateway.version == 4:
        for f in _arp_reply(net.vni, str(net.gateway), GATEWAY_MAC):
            shared[f.cookie] = f
    for ep in members:
        local.setdefault(ep.hypervisor, []).append(ep)
        for ip in ep.ips:
            if ip not in answered and _is_ipv4(ip):
                answered.add(ip)
                for f in _arp_reply(net.vni, ip, ep.mac):
                    shared[f.cookie] = f
        rkey = key_of.get(ep.hypervisor)
        if ep.mac not in unicast and rkey is not None:
            f = _remote_unicast(net.vni, ep.mac, rkey)
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
        f = _local_unicast(vni, ep.mac, ep.ofport)
        flows[f.cookie] = f
    tunnels = tuple(hv.tunnels[r] for r in part.hosts if r != hv.name and r in hv.tunnels)
    for f in _flood(vni, tuple(local_ports), tunnels):
        flows[f.cookie] = f
    # Only a VM bound without addresses can answer an ARP the responder cannot.
    askable = tuple(hv.tunnels[r] for r in sorted(part.addressless)
                    if r != hv.name and r in hv.tunnels)
    for f in _arp_miss(vni, tuple(local_ports), askable):
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


# --- memoised builders: one Flow object per distinct flow ---------------------------------

@lru_cache(maxsize=MEMO)
def endpoint_flows(ep: Endpoint, vni: int) -> FlowMap:
    return _checked([_classify_vm(ep, vni), *_port_security(ep)])


@lru_cache(maxsize=MEMO)
def _tunnel_classify(vni: int) -> Flow:
    return _check(flow(Stage.IN_CLASSIFY, P_NORMAL, {"tunnel_id": vni},
                       [SetField(REG_NETWORK, vni), SetField(REG_FROM_TUNNEL, 1)],
                       goto=Stage.IN_L2_LOOKUP))


@lru_cache(maxsize=MEMO)
def _arp_reply(vni: int, ip: str, mac: str) -> tuple[Flow, Flow]:
    """Answer 'who has ip' in OVS: turn the request into the reply and send it back."""
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_type": ETH_ARP, "arp_op": 1,
                                     "arp_tpa": ip}
    # A gratuitous ARP (sender asks for its own address) announces, it does not ask: pass it.
    return (_check(flow(Stage.IN_ARP_RESPONDER, P_SPECIFIC, {**match, "arp_spa": ip},
                        goto=Stage.IN_L2_LOOKUP)),
            _check(flow(Stage.IN_ARP_RESPONDER, P_NORMAL, match, [
                Move("eth_src", "eth_dst", 48), SetField("eth_src", mac), SetField("arp_op", 2),
                Move("arp_sha", "arp_tha", 48), SetField("arp_sha", mac),
                Move("arp_spa", "arp_tpa", 32), SetField("arp_spa", ip), Output(IN_PORT)])))


@lru_cache(maxsize=MEMO)
def _remote_unicast(vni: int, mac: str, rkey: int) -> Flow:
    # Only traffic from local VMs goes out to a tunnel: no hairpin between hypervisors.
    return _check(flow(Stage.IN_L2_LOOKUP, P_NORMAL,
                       {REG_NETWORK: vni, REG_FROM_TUNNEL: 0, "eth_dst": mac},
                       [SetField(REG_REMOTE, rkey), SetField("tunnel_id", vni)],
                       goto=Stage.OUT_TUNNEL))


@lru_cache(maxsize=MEMO)
def _local_unicast(vni: int, mac: str, ofport: int) -> Flow:
    return _check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {REG_NETWORK: vni, "eth_dst": mac},
                       [Output(ofport)]))


@lru_cache(maxsize=MEMO)
def to_tunnel(rkey: int, ofport: int) -> FlowMap:
    return _checked([flow(Stage.OUT_TUNNEL, P_NORMAL, {REG_REMOTE: rkey}, [Output(ofport)])])


@lru_cache(maxsize=MEMO)
def _flood(vni: int, local: tuple[int, ...], tunnels: tuple[int, ...]) -> tuple[Flow, Flow]:
    """Broadcast and multicast: local ports, plus each hypervisor hosting the network once;
    from a tunnel, local ports only."""
    local_out: list[Action] = [Output(p) for p in local]
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_dst": MULTICAST}
    to_remote: list[Action] = ([SetField("tunnel_id", vni), *(Output(p) for p in tunnels)]
                               if tunnels else [])
    return (_check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 0},
                        [*local_out, *to_remote])),
            _check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 1}, local_out)))


@lru_cache(maxsize=MEMO)
def _arp_miss(vni: int, local: tuple[int, ...], tunnels: tuple[int, ...]) -> tuple[Flow, Flow]:
    """An ARP request the responder cannot answer does not cross the underlay (DOVE answers
    ARP at the edge): it goes to the network's local ports, and to the hypervisors hosting a
    VM bound without addresses, the only kind that could answer it."""
    local_out: list[Action] = [Output(p) for p in local]
    to_remote: list[Action] = ([SetField("tunnel_id", vni), *(Output(p) for p in tunnels)]
                               if tunnels else [])
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_type": ETH_ARP, "arp_op": 1}
    return (_check(flow(Stage.IN_ARP_RESPONDER, P_ARP_MISS, {**match, REG_FROM_TUNNEL: 0},
                        [*local_out, *to_remote])),
            _check(flow(Stage.IN_ARP_RESPONDER, P_ARP_MISS, {**match, REG_FROM_TUNNEL: 1},
                        local_out)))


def _classify_vm(ep: Endpoint, vni: int) -> Flow:
    return flow(Stage.IN_CLASSIFY, P_NORMAL, {"in_port": ep.ofport, "eth_src": ep.mac},
                [SetField(REG_NETWORK, vni)], goto=Stage.IN_PORT_SEC)


def _port_security(ep: Endpoint) -> Iterator[Flow]:
    """A VM may only use its own addresses; with none bound, only its MAC is enforced."""
    nxt = Stage.IN_ARP_RESPONDER
    if not ep.ips:
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport}, goto=nxt)
        return
    versions = {ipaddress.ip_address(ip).version for ip in ep.ips}
    for ip in ep.ips:
        if ipaddress.ip_address(ip).version == 4:
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                                     "arp_spa": ip, "arp_sha": ep.mac}, goto=nxt)
            # Duplicate address detection: a probe for its own address must not be answered
            # (with its own MAC) by the responder; it goes to the network as it is.
            yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {
                "in_port": ep.ofport, "eth_type": ETH_ARP, "arp_spa": "0.0.0.0",
                "arp_tpa": ip, "arp_sha": ep.mac}, goto=Stage.IN_L2_LOOKUP)
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV4,
                                                     "ipv4_src": ip}, goto=nxt)
        else:
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": ip}, goto=nxt)
    if 4 in versions:
        # A probe for another address is answered if that address is known: a conflict.
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                                 "arp_spa": "0.0.0.0", "arp_sha": ep.mac},
                   goto=nxt)
    if 6 in versions:
        # Link-local addresses and duplicate address detection (from ::) are part of IPv6.
        for src in (IPV6_LINK_LOCAL, IPV6_UNSPECIFIED):
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": src}, goto=nxt)
