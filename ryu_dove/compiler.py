"""The desired flows of a hypervisor's br-int, as pure data, built from shared parts.

A switch's flows are the union of:
- the defaults (every stage's table-miss drop), the same everywhere;
- per local endpoint: its classification and port security;
- per network it hosts: the network's *shared part* (tunnel classification, ARP answers and
  a unicast flow for every member MAC, naming the member's hypervisor in REG_REMOTE), which
  is identical on every hypervisor hosting the network, with the unicast flows of its own
  members replaced by local delivery, plus its flood flows;
- per remote hypervisor it shares a network with: the OUT_TUNNEL flow to the tunnel port.

Because the shared part names hypervisors by key instead of by this switch's tunnel ofport,
one endpoint's flows are the same objects (same cookie, same encoded bytes) on every
hypervisor, and each distinct flow is built and encoded once (the builders are memoised).
The `Compiler` keeps the parts between calls, rebuilds only those whose inputs changed, and
keeps each switch's flows as the union of its parts (`SwitchFlows`): a changed part costs
work in proportion to that part, and the change is reported as the cookies that moved, so an
endpoint event costs each hosting hypervisor a few dictionary updates, not a recompile.

`compile_switch(policy, directory, hv)` is the whole computation for one switch (no I/O,
no clock). Stages and registers: ryu_dove.pipeline and docs/pipeline.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from ryu_dove.directory import Directory, Endpoint, Hypervisor
from ryu_dove.flows import (
    IN_PORT,
    Action,
    Flow,
    MatchValue,
    Move,
    Output,
    SetField,
    check_flow,
    flow,
)
from ryu_dove.pipeline import REG_FROM_TUNNEL, REG_NETWORK, REG_REMOTE, Stage
from ryu_dove.policy import Network, Policy
from ryu_dove.tunnel_ids import remote_key

GATEWAY_MAC = "02:d0:ee:00:00:01"  # answers ARP for every network's gateway address
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
IPV6_LINK_LOCAL = ("fe80::", "ffc0::")
IPV6_UNSPECIFIED = "::"

# Priorities inside a stage: specific before general; 0 is each stage's default.
P_DEFAULT, P_NORMAL, P_SPECIFIC = 0, 100, 110
MEMO = 1 << 18  # distinct flows kept per builder; a miss costs one rebuild

FlowSet = Mapping[int, Flow]  # cookie -> flow
PartKey = tuple[str, str]  # ("defaults" | "endpoint" | "network" | "tunnel", name)


def compile_switch(policy: Policy, directory: Directory, hypervisor: str) -> frozenset[Flow]:
    """Every flow of one hypervisor's br-int (empty if the hypervisor is unknown)."""
    return frozenset(Compiler().switch(policy, directory, hypervisor).values())


@dataclass(frozen=True, eq=False)
class NetworkPart:
    """What every hypervisor hosting one network installs alike, and what it needs to
    specialise it. Built once per change of the network's members (or their TEPs)."""

    net: Network
    members: tuple[Endpoint, ...]  # the directory's order: (hypervisor, port)
    keys: tuple[tuple[str, int], ...]  # hosting hypervisor -> its remote key
    shared: FlowSet
    remote_unicast: Mapping[str, Flow]  # MAC -> its unicast flow in `shared`

    @property
    def hosts(self) -> Iterator[str]:
        return (name for name, _ in self.keys)


class SwitchFlows:
    """One switch's desired flows as the union of its parts, updated part by part.

    `flows` is the live result (cookie -> flow). A flow may belong to two parts (it should
    not, but a directory in flux may make it so); it stays while any part holds it.
    """

    def __init__(self) -> None:
        self.parts: dict[PartKey, FlowSet] = {}
        self.flows: dict[int, Flow] = {}
        self._shared: dict[int, int] = {}  # cookie -> how many more parts hold it

    def update(self, parts: dict[PartKey, FlowSet]) -> set[int]:
        """Make the parts these; returns the cookies added to or removed from `flows`."""
        changed: set[int] = set()
        old_parts, self.parts = self.parts, parts
        for key, new in parts.items():
            old = old_parts.get(key)
            if old is new:
                continue
            if old is None:
                for cookie, f in new.items():
                    self._add(cookie, f, changed)
                continue
            for cookie in old.keys() - new.keys():
                self._remove(cookie, changed)
            for cookie in new.keys() - old.keys():
                self._add(cookie, new[cookie], changed)
        for key in old_parts.keys() - parts.keys():
            for cookie in old_parts[key]:
                self._remove(cookie, changed)
        return changed

    def _add(self, cookie: int, f: Flow, changed: set[int]) -> None:
        if cookie in self.flows:
            self._shared[cookie] = self._shared.get(cookie, 0) + 1
        else:
            self.flows[cookie] = f
            changed.add(cookie)

    def _remove(self, cookie: int, changed: set[int]) -> None:
        more = self._shared.get(cookie, 0)
        if more > 1:
            self._shared[cookie] = more - 1
        elif more == 1:
            del self._shared[cookie]
        else:
            del self.flows[cookie]
            changed.add(cookie)


class Compiler:
    """Builds switches from parts, keeping the parts whose inputs did not change."""

    def __init__(self) -> None:
        self._parts: dict[str, NetworkPart] = {}
        self._hv_parts: dict[tuple[str, str], tuple[NetworkPart, Hypervisor, FlowSet]] = {}
        self._switches: dict[str, SwitchFlows] = {}

    def switch(self, policy: Policy, directory: Directory, name: str) -> dict[int, Flow]:
        """One switch's flows (a copy)."""
        return {c: f for _, sw, _ in self.switches(policy, directory, [name])
                for c, f in sw.flows.items()}

    def switches(self, policy: Policy, directory: Directory, names: Iterable[str],
                 ) -> Iterator[tuple[str, SwitchFlows, set[int]]]:
        """Bring each named switch up to date: (name, its flows, the cookies that changed).
        Every network's part is checked against the directory once per call, however
        many of the switches host it."""
        checked: dict[str, NetworkPart] = {}
        for name in names:
            sw = self._switches.setdefault(name, SwitchFlows())
            yield name, sw, sw.update(self._parts_of(policy, directory, name, checked))

    def _parts_of(self, policy: Policy, directory: Directory, name: str,
                  checked: dict[str, NetworkPart]) -> dict[PartKey, FlowSet]:
        hv = directory.hypervisor(name)
        if hv is None:
            return {}
        parts: dict[PartKey, FlowSet] = {("defaults", ""): DEFAULTS}
        for ep in directory.endpoints_on(name):
            net = policy.network(ep.network)
            if net is not None:
                parts[("endpoint", ep.port)] = _endpoint_flows(ep, net.vni)
        keys: dict[str, int] = {}
        for key in directory.networks_on(name):
            net = policy.network(key)
            if net is None:
                continue
            part = checked.get(key)
            if part is None:
                part = checked[key] = self.network_part(net, directory)
            parts[("network", key)] = self._hypervisor_part(part, hv)
            keys.update(part.keys)
        for remote, rkey in keys.items():
            ofport = hv.tunnels.get(remote)
            if remote != name and ofport is not None:
                parts[("tunnel", remote)] = _to_tunnel(rkey, ofport)
        return parts

    def network_part(self, net: Network, directory: Directory) -> NetworkPart:
        members = directory.endpoints(net.key)
        keys = _host_keys(members, directory)
        old = self._parts.get(net.key)
        if old is not None and old.net == net and old.members == members and old.keys == keys:
            return old
        part = _build_part(net, members, keys)
        self._parts[net.key] = part
        return part

    def forget(self, live_networks: Iterable[str], live_hypervisors: Iterable[str]) -> None:
        """Drop parts of networks and hypervisors that are gone (memory, not correctness)."""
        nets, hvs = set(live_networks), set(live_hypervisors)
        self._parts = {k: p for k, p in self._parts.items() if k in nets}
        self._hv_parts = {k: v for k, v in self._hv_parts.items()
                          if k[0] in hvs and k[1] in nets}
        self._switches = {k: v for k, v in self._switches.items() if k in hvs}

    def _hypervisor_part(self, part: NetworkPart, hv: Hypervisor) -> FlowSet:
        cached = self._hv_parts.get((hv.name, part.net.key))
        # Identity, not equality: comparing tunnel maps costs O(hypervisors) per lookup.
        if cached is not None and cached[0] is part and cached[1] is hv:
            return cached[2]
        flows = _specialise(part, hv)
        self._hv_parts[(hv.name, part.net.key)] = (part, hv, flows)
        return flows


def _host_keys(members: tuple[Endpoint, ...], directory: Directory) -> tuple[tuple[str, int], ...]:
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


def _check(f: Flow) -> Flow:
    check_flow(f)  # once per distinct flow: the builders below are memoised
    return f


def _checked(flows: Iterable[Flow]) -> FlowSet:
    return {f.cookie: _check(f) for f in flows}  # read-only by contract; dicts merge fastest


DEFAULTS = _checked(_defaults())


def _build_part(net: Network, members: tuple[Endpoint, ...],
                keys: tuple[tuple[str, int], ...]) -> NetworkPart:
    """If the directory ever holds one MAC or address twice (bindings refuse that, but a
    replicated directory may briefly disagree), the first member wins everywhere: the gateway
    over any VM, then (hypervisor, port) order; a hypervisor prefers its own port for a MAC."""
    key_of = dict(keys)
    shared: dict[int, Flow] = {}
    unicast: dict[str, Flow] = {}
    classify = _tunnel_classify(net.vni)
    shared[classify.cookie] = classify
    answered = {str(net.gateway)}
    if net.gateway.version == 4:
        for f in _arp_reply(net.vni, str(net.gateway), GATEWAY_MAC):
            shared[f.cookie] = f
    for ep in members:
        for ip in ep.ips:
            if ip not in answered and ipaddress.ip_address(ip).version == 4:
                answered.add(ip)
                for f in _arp_reply(net.vni, ip, ep.mac):
                    shared[f.cookie] = f
        rkey = key_of.get(ep.hypervisor)
        if ep.mac not in unicast and rkey is not None:
            f = _remote_unicast(net.vni, ep.mac, rkey)
            unicast[ep.mac] = f
            shared[f.cookie] = f
    return NetworkPart(net, members, keys, shared, unicast)


def _specialise(part: NetworkPart, hv: Hypervisor) -> FlowSet:
    """The shared part as this hypervisor installs it: its own members delivered locally."""
    vni = part.net.vni
    flows = dict(part.shared)
    local_ports: list[int] = []
    delivered: set[str] = set()
    for ep in part.members:
        if ep.hypervisor != hv.name:
            continue
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
    return flows


# --- memoised builders: one Flow object per distinct flow ---------------------------------

@lru_cache(maxsize=MEMO)
def _endpoint_flows(ep: Endpoint, vni: int) -> FlowSet:
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
def _to_tunnel(rkey: int, ofport: int) -> FlowSet:
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
