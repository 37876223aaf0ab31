"""IN_L3_ROUTE, IN_ACL_STATE and IN_L3_LOOKUP: routing between a tenant's networks at the
source hypervisor, allowed only by the tenant's rules, statefully (docs/pipeline.md).

- A VM sends to its gateway's MAC; if a rule connects its network to the destination
  address's network (in either direction: replies are routed too), the packet is routed:
  destination network in reg0, source network in reg4, the tenant's conntrack zone in reg3,
  source MAC the gateway's, TTL decremented (at 1 the switch drops it).
- Every routed packet passes conntrack in the zone (IN_ACL, a default flow). A new
  connection a rule allows is committed with the rule's mark; packets of established or
  related connections pass only while a flow for their mark exists, so removing a rule ends
  the connections it allowed at once, and nothing needs flushing.
- IN_L3_LOOKUP turns the destination address into the endpoint's MAC and delivers it: to the
  local port, or through the tunnel to the hypervisor that hosts it (only for traffic of
  local VMs: no hairpin). An address nobody holds is dropped here, at the source.
- Routed packets arriving by tunnel (source MAC the gateway's, source address in a connected
  network) are marked the same way and pass the destination's conntrack too: the reply of a
  connection is routed at the destination's hypervisor, whose conntrack must have seen the
  request.

The tenant's part (routes and rules) is the same on every hypervisor; a network's lookup
flows are specialised per hypervisor (local delivery).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache

from ryu_dove.directory import Endpoint, Hypervisor
from ryu_dove.pipeline.flows import (
    Ct,
    DecTtl,
    Flow,
    FlowMap,
    MatchValue,
    Output,
    SetField,
    ct_state,
    flow,
)
from ryu_dove.pipeline.parts.common import (
    ETH_IPV4,
    ETH_IPV6,
    GATEWAY_MAC,
    P_NORMAL,
    P_SPECIFIC,
    checked,
)
from ryu_dove.pipeline.parts.matches import port_matches, rule_mark, tenant_zones
from ryu_dove.pipeline.stages import (
    REG_FROM_NETWORK,
    REG_FROM_TUNNEL,
    REG_NETWORK,
    REG_REMOTE,
    REG_ZONE,
    Stage,
)
from ryu_dove.policy import Network, Policy, Rule, Tenant

PROTO_NUMBERS = {("tcp", 4): 6, ("tcp", 6): 6, ("udp", 4): 17, ("udp", 6): 17,
                 ("icmp", 4): 1, ("icmp", 6): 58}
PORT_FIELD = {"tcp": "tcp_dst", "udp": "udp_dst"}


@lru_cache(maxsize=4096)
def connected(tenant: Tenant) -> frozenset[tuple[str, str]]:
    """(from, to) network names that are routed: both directions of every rule, of the same
    IP version."""
    pairs = set()
    for rule in tenant.rules:
        src, dst = tenant.networks.get(rule.src), tenant.networks.get(rule.dst)
        if src is not None and dst is not None and src.key != dst.key \
                and src.subnet.version == dst.subnet.version:
            pairs |= {(src.name, dst.name), (dst.name, src.name)}
    return frozenset(pairs)


@lru_cache(maxsize=4096)
def routed_networks(policy: Policy, tenant: str) -> frozenset[str]:
    """The network keys of a tenant that routing touches (empty without rules)."""
    t = policy.tenants.get(tenant)
    if t is None:
        return frozenset()
    return frozenset(t.networks[name].key for pair in connected(t) for name in pair)


@lru_cache(maxsize=256)
def tenant_part(policy: Policy, tenant: str) -> FlowMap:
    """The routes and rules of one tenant, the same on every hypervisor."""
    t = policy.tenants[tenant]
    zone = tenant_zones(policy)[tenant]
    flows: list[Flow] = []
    for src, dst in sorted(connected(t)):
        flows += _routes(t.networks[src], t.networks[dst], zone)
    for index, rule in enumerate(t.rules):
        flows += _rule_flows(t, rule, zone, priority=P_NORMAL + len(t.rules) - index)
    return checked(flows)


def _routes(src: Network, dst: Network, zone: int) -> Iterator[Flow]:
    eth_type, field = _ip(dst)
    mark = [SetField(REG_FROM_NETWORK, src.vni), SetField(REG_ZONE, zone)]
    subnet_of = _prefix(dst)
    yield flow(Stage.IN_L3_ROUTE, P_NORMAL,
               {REG_NETWORK: src.vni, REG_FROM_TUNNEL: 0, "eth_dst": GATEWAY_MAC,
                "eth_type": eth_type, f"{field}_dst": subnet_of},
               [*mark, SetField(REG_NETWORK, dst.vni), SetField("eth_src", GATEWAY_MAC),
                DecTtl()], goto=Stage.IN_ACL)
    # Routed at the source and arriving here: through this side's conntrack as well.
    yield flow(Stage.IN_L3_ROUTE, P_NORMAL,
               {REG_NETWORK: dst.vni, REG_FROM_TUNNEL: 1, "eth_src": GATEWAY_MAC,
                "eth_type": eth_type,
                f"{field}_src": _prefix(src)},
               mark, goto=Stage.IN_ACL)


def _rule_flows(t: Tenant, rule: Rule, zone: int, priority: int) -> Iterator[Flow]:
    src, dst = t.networks.get(rule.src), t.networks.get(rule.dst)
    if src is None or dst is None or src.subnet.version != dst.subnet.version:
        return
    mark = rule_mark(rule)
    for state in ("+trk+est", "+trk+rel"):  # both ways, while the rule stands
        yield flow(Stage.IN_ACL_STATE, P_SPECIFIC + 100,
                   {"ct_state": ct_state(state), REG_ZONE: zone, "ct_mark": mark},
                   goto=Stage.IN_L3_LOOKUP)
    base: dict[str, MatchValue] = {"ct_state": ct_state("+trk+new-inv"), REG_ZONE: zone,
                                   REG_FROM_NETWORK: src.vni, REG_NETWORK: dst.vni,
                                   "eth_type": _ip(dst)[0]}
    for match in _protocol_matches(rule, src.subnet.version):
        yield flow(Stage.IN_ACL_STATE, priority, {**base, **match},
                   [Ct(commit=True, zone=REG_ZONE, mark=mark)], goto=Stage.IN_L3_LOOKUP)


def _protocol_matches(rule: Rule, version: int) -> Iterator[dict[str, MatchValue]]:
    if rule.proto == "any":
        yield {}
        return
    proto: dict[str, MatchValue] = {"ip_proto": PROTO_NUMBERS[rule.proto, version]}
    if rule.ports is None or rule.proto not in PORT_FIELD:
        yield proto
        return
    ports = list(port_matches(*rule.ports))
    if not ports:
        yield proto
    for port in ports:
        yield {**proto, PORT_FIELD[rule.proto]: port}


def lookup_part(net: Network, members: tuple[Endpoint, ...], hv: Hypervisor,
                keys: Mapping[str, int]) -> FlowMap:
    """A network's addresses -> its endpoints, delivered from `hv`: locally, or through the
    tunnel to their hypervisor (only what a local VM sent). The first member to hold an
    address wins, as in the network's own part."""
    eth_type, field = _ip(net)
    flows: list[Flow] = []
    seen: set[str] = set()
    for ep in members:
        for ip in ep.ips:
            if ip in seen or (":" in ip) != (net.subnet.version == 6):
                continue
            seen.add(ip)
            match: dict[str, MatchValue] = {REG_NETWORK: net.vni, "eth_type": eth_type,
                                            f"{field}_dst": ip}
            if ep.hypervisor == hv.name:
                flows.append(flow(Stage.IN_L3_LOOKUP, P_NORMAL, match,
                                  [SetField("eth_dst", ep.mac), Output(ep.ofport)]))
            elif ep.hypervisor in keys:
                flows.append(flow(Stage.IN_L3_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 0},
                                  [SetField("eth_dst", ep.mac), SetField("tunnel_id", net.vni),
                                   SetField(REG_REMOTE, keys[ep.hypervisor])],
                                  goto=Stage.OUT_TUNNEL))
    return checked(flows)


def _prefix(net: Network) -> tuple[str, str]:
    return str(net.subnet.network_address), str(net.subnet.netmask)


def _ip(net: Network) -> tuple[int, str]:
    return (ETH_IPV4, "ipv4") if net.subnet.version == 4 else (ETH_IPV6, "ipv6")
