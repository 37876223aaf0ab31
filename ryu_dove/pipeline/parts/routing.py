"""IN_L3_ROUTE, IN_ACL_STATE and IN_L3_LOOKUP: routing between a tenant's networks at the
source hypervisor, allowed only by the tenant's rules, statefully (docs/pipeline.md).

- A VM sends to its gateway's MAC; if a rule connects its network to the destination
  address's network (in either direction: replies are routed too), the packet is routed:
  destination network in reg0, source network in reg4, the tenant's conntrack zone in reg3,
  source MAC the gateway's, TTL decremented (at 1 the switch drops it).
- The end that opens connections tracks them. Where a pair of networks has rules one way
  only, the hypervisor of the opening network's endpoint passes every packet between them,
  both ways, through conntrack (IN_ACL): one conntrack per connection. Where rules go both
  ways, both ends track. A new connection a rule allows is committed with the rule's mark;
  packets of established or related connections pass only while a flow for their mark
  exists, so removing a rule ends the connections it allowed at once, and nothing needs
  flushing.
- The responding end of a one-way pair checks statelessly (IN_ACL_STATE, untracked): what
  arrives must have a rule's opening shape (so a forged "routed" packet from a peer still
  needs one), what it sends must look like a reply (the opener's conntrack decides).
- A packet the responding end routes is tracked after all if its destination turns out to
  be local (reg5: IN_L3_LOOKUP sends it through conntrack before delivery): then this
  hypervisor hosts the opening end too.
- IN_L3_LOOKUP turns the destination address into the endpoint's MAC and delivers it: to the
  local port, or through the tunnel to the hypervisor that hosts it (only for traffic of
  local VMs: no hairpin). An address nobody holds is dropped here, at the source.

The tenant's part (routes and rules) is the same on every hypervisor; a network's lookup
flows are specialised per hypervisor (local delivery).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.flows import (
    Action,
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
    MEMO,
    P_NORMAL,
    P_SPECIFIC,
    check,
    checked,
)
from ryu_dove.pipeline.parts.matches import port_matches, rule_mark, tenant_zones
from ryu_dove.pipeline.parts.network import NetworkPart
from ryu_dove.pipeline.stages import (
    REG_FROM_NETWORK,
    REG_FROM_TUNNEL,
    REG_NETWORK,
    REG_REMOTE,
    REG_TRACK_HERE,
    REG_ZONE,
    Stage,
)
from ryu_dove.policy import Network, Policy, Rule, Tenant

PROTO_NUMBERS = {("tcp", 4): 6, ("tcp", 6): 6, ("udp", 4): 17, ("udp", 6): 17,
                 ("icmp", 4): 1, ("icmp", 6): 58}
PORT_FIELD = {"tcp": "tcp_dst", "udp": "udp_dst"}
REPLY_PORT_FIELD = {"tcp": "tcp_src", "udp": "udp_src"}
ICMP_TYPE_FIELD = {4: "icmpv4_type", 6: "icmpv6_type"}
# Errors that may come back about a connection: unreachable, time exceeded, parameter
# problem (and, for IPv6, packet too big).
ICMP_ERRORS = {4: (3, 11, 12), 6: (1, 2, 3, 4)}
P_LOOKUP_REMOTE = P_SPECIFIC  # over the local delivery that waits for conntrack


@lru_cache(maxsize=4096)
def opening(tenant: Tenant) -> frozenset[tuple[str, str]]:
    """(from, to) network names between which some rule lets connections be opened (two
    networks of the same IP version). The opening end of a pair tracks its connections."""
    pairs = set()
    for rule in tenant.rules:
        src, dst = tenant.networks.get(rule.src), tenant.networks.get(rule.dst)
        if src is not None and dst is not None and src.key != dst.key \
                and src.subnet.version == dst.subnet.version:
            pairs.add((src.name, dst.name))
    return frozenset(pairs)


@lru_cache(maxsize=4096)
def connected(tenant: Tenant) -> frozenset[tuple[str, str]]:
    """(from, to) network names that are routed: both directions of every rule, of the same
    IP version."""
    return opening(tenant) | {(dst, src) for src, dst in opening(tenant)}


@lru_cache(maxsize=4096)
def routing_into(tenant: Tenant, key: str) -> tuple[Network, ...]:
    """The tenant's networks that route into network `key` (their hosts look it up)."""
    return tuple(tenant.networks[src] for src, dst in sorted(connected(tenant))
                 if tenant.networks[dst].key == key)


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
    opens = opening(t)
    flows: list[Flow] = []
    for src, dst in sorted(connected(t)):
        flows += _routes(t.networks[src], t.networks[dst], zone,
                         src_tracks=(src, dst) in opens, dst_tracks=(dst, src) in opens)
    for opener, responder in sorted(opens):
        if (responder, opener) not in opens:  # one way: the responder's end checks
            flows += _shapes(t, t.networks[opener], t.networks[responder], zone)
    for index, rule in enumerate(t.rules):
        flows += _rule_flows(t, rule, zone, priority=P_NORMAL + len(t.rules) - index)
    return checked(flows)


def _routes(src: Network, dst: Network, zone: int, src_tracks: bool,
            dst_tracks: bool) -> Iterator[Flow]:
    eth_type, field = _ip(dst)
    mark = [SetField(REG_FROM_NETWORK, src.vni), SetField(REG_ZONE, zone)]
    subnet_of = _prefix(dst)
    routed: list[Action] = [*mark, SetField(REG_NETWORK, dst.vni),
                            SetField("eth_src", GATEWAY_MAC), DecTtl()]
    # Only the other end tracks: checked here statelessly, tracked here if delivered here.
    yield flow(Stage.IN_L3_ROUTE, P_NORMAL,
               {REG_NETWORK: src.vni, REG_FROM_TUNNEL: 0, "eth_dst": GATEWAY_MAC,
                "eth_type": eth_type, f"{field}_dst": subnet_of},
               routed if src_tracks else [*routed, SetField(REG_TRACK_HERE, 1)],
               goto=Stage.IN_ACL if src_tracks else Stage.IN_ACL_STATE)
    # Routed at the source and arriving here: tracked here if this end tracks, else checked.
    yield flow(Stage.IN_L3_ROUTE, P_NORMAL,
               {REG_NETWORK: dst.vni, REG_FROM_TUNNEL: 1, "eth_src": GATEWAY_MAC,
                "eth_type": eth_type,
                f"{field}_src": _prefix(src)},
               mark, goto=Stage.IN_ACL if dst_tracks else Stage.IN_ACL_STATE)


def _rule_flows(t: Tenant, rule: Rule, zone: int, priority: int) -> Iterator[Flow]:
    src, dst = t.networks.get(rule.src), t.networks.get(rule.dst)
    if src is None or dst is None or src.subnet.version != dst.subnet.version:
        return
    mark = rule_mark(rule)
    for state in ("+trk+est", "+trk+rel"):  # both ways, while the rule stands
        yield flow(Stage.IN_ACL_STATE, P_SPECIFIC + 100,
                   {"ct_state": ct_state(state), REG_ZONE: zone, "ct_mark": mark},
                   goto=Stage.IN_L3_LOOKUP)
    base: dict[str, MatchValue] = {REG_ZONE: zone, REG_FROM_NETWORK: src.vni,
                                   REG_NETWORK: dst.vni, "eth_type": _ip(dst)[0]}
    # A new connection the rule allows is committed with its mark. So is an established
    # one going the opening way whose mark no longer passes (the rule that opened it is
    # gone): this rule allows it too, so it is kept, re-marked by its next packet.
    for state in ("+trk+new-inv", "+trk+est-rpl-inv"):
        for match in _protocol_matches(rule, src.subnet.version):
            yield flow(Stage.IN_ACL_STATE, priority, {**base, "ct_state": ct_state(state),
                                                      **match},
                       [Ct(commit=True, zone=REG_ZONE, mark=mark)], goto=Stage.IN_L3_LOOKUP)


def _shapes(t: Tenant, opener: Network, responder: Network, zone: int) -> Iterator[Flow]:
    """The stateless check of the responder's end of a one-way pair (the opener's end
    tracks). What arrives from the opener must have a rule's opening shape: that is where a
    forged packet from a peer is stopped. What the responder sends back must look like a
    reply (from a rule's ports; any ICMP, errors included): that only keeps junk off the
    underlay, the opener's conntrack decides."""
    rules = [r for r in t.rules if (r.src, r.dst) == (opener.name, responder.name)]
    version = opener.subnet.version
    inbound = [m for r in rules for m in _protocol_matches(r, version)]
    outbound = [m for r in rules for m in _reply_matches(r, version)]
    outbound += [{"ip_proto": PROTO_NUMBERS["icmp", version], ICMP_TYPE_FIELD[version]: kind}
                 for kind in ICMP_ERRORS[version]]
    for a, b, matches in ((opener, responder, inbound), (responder, opener, outbound)):
        for match in matches:
            yield flow(Stage.IN_ACL_STATE, P_NORMAL,
                       {"ct_state": ct_state("-trk"), REG_ZONE: zone, REG_FROM_NETWORK: a.vni,
                        REG_NETWORK: b.vni, "eth_type": _ip(b)[0], **match},
                       goto=Stage.IN_L3_LOOKUP)


def _reply_matches(rule: Rule, version: int) -> Iterator[dict[str, MatchValue]]:
    """A rule's replies: from its ports; for ICMP, any ICMP (the opener's end tracks)."""
    if rule.proto == "any":
        yield {}
        return
    proto: dict[str, MatchValue] = {"ip_proto": PROTO_NUMBERS[rule.proto, version]}
    if rule.proto == "icmp":
        yield proto
        return
    for match in _protocol_matches(rule, version):
        port = match.get(PORT_FIELD[rule.proto])
        yield proto if port is None else {**proto, REPLY_PORT_FIELD[rule.proto]: port}


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


@dataclass(frozen=True, eq=False)
class SharedLookup:
    """A network's addresses -> its endpoints, as a hypervisor hosting none of them has it:
    each through the tunnel to its hypervisor (only what a local VM sent). The first member
    to hold an address wins, as in the network's own part. Built once per network part;
    specialise_lookup() delivers a hypervisor's own members locally. Like a network part,
    it carries its difference to the lookup it replaces (amend_lookup)."""

    part: NetworkPart
    flows: Mapping[int, Flow]  # cookie -> flow, for the members whose hypervisor is known
    winners: Mapping[str, tuple[str, int | None]]  # ip -> (winner's MAC, its remote cookie)
    base: int | None = None  # the serial of the part `added` and `removed` are relative to
    added: Mapping[int, Flow] = field(default_factory=dict)
    removed: frozenset[int] = frozenset()
    changed_ips: frozenset[str] = frozenset()  # addresses whose winner or flow changed

    @classmethod
    def of(cls, part: NetworkPart, previous: SharedLookup | None = None) -> SharedLookup:
        if previous is not None:
            amended = cls._amended(part, previous)
            if amended is not None:
                return amended
        return cls._built(part, previous)

    @classmethod
    def _amended(cls, part: NetworkPart, previous: SharedLookup) -> SharedLookup | None:
        """The next lookup from the members that came and went, when that is exact: the same
        network and hosts, and none of their addresses held twice before or after."""
        old = previous.part
        if part.net is not old.net or part.keys != old.keys:
            return None
        now, before = {id(ep) for ep in part.members}, {id(ep) for ep in old.members}
        gone = [ep for ep in old.members if id(ep) not in now]
        came = [ep for ep in part.members if id(ep) not in before]
        ips = [ip for ep in (*gone, *came) for ip in ep.ips]
        if any(old.claims.get(ip, 0) > 1 or part.claims.get(ip, 0) > 1 for ip in ips):
            return None  # who wins an address may change
        flows, winners = dict(previous.flows), dict(previous.winners)
        added: dict[int, Flow] = {}
        removed: set[int] = set()
        for ep in gone:
            for ip in ep.ips:
                _, cookie = winners.pop(ip, ("", None))
                if cookie is not None:
                    flows.pop(cookie, None)
                    removed.add(cookie)
        keys = dict(part.keys)
        for ep in came:
            for ip in ep.ips:
                if (":" in ip) != (part.net.subnet.version == 6):
                    continue
                f = _remote_of(part.net, keys, ep, ip)
                if f is not None:
                    flows[f.cookie] = added[f.cookie] = f
                    removed.discard(f.cookie)
                winners[ip] = (ep.mac, None if f is None else f.cookie)
        # A member that came back unchanged in what the flow says (a new port number) is
        # neither added nor removed.
        return cls(part, flows, winners, old.serial,
                   {c: f for c, f in added.items() if c not in previous.flows},
                   frozenset(removed), frozenset(ips))

    @classmethod
    def _built(cls, part: NetworkPart, previous: SharedLookup | None) -> SharedLookup:
        net, keys = part.net, dict(part.keys)
        flows: dict[int, Flow] = {}
        winners: dict[str, tuple[str, int | None]] = {}
        for ep in part.members:
            for ip in ep.ips:
                if ip in winners or (":" in ip) != (net.subnet.version == 6):
                    continue
                f = _remote_of(net, keys, ep, ip)
                if f is not None:
                    flows[f.cookie] = f
                winners[ip] = (ep.mac, None if f is None else f.cookie)
        if previous is None:
            return cls(part, flows, winners)
        old = previous.winners
        return cls(part, flows, winners, previous.part.serial,
                   {c: f for c, f in flows.items() if c not in previous.flows},
                   frozenset(c for c in previous.flows if c not in flows),
                   frozenset(ip for ip in winners.keys() | old.keys()
                             if winners.get(ip) != old.get(ip)))


def amend_lookup(flows: dict[int, Flow], built_from: NetworkPart, shared: SharedLookup,
                 hv: str) -> tuple[dict[int, Flow], list[int]] | None:
    """Bring `flows` (hv's specialise_lookup() of the lookup built from `built_from`) to
    `shared` in place, if that is exact: `shared` is the next lookup after it, hv's own
    members are the same and none of their addresses changed hands (their flows are local,
    not the shared ones). Returns what was added and removed; None, and `flows` untouched,
    when it is not exact."""
    local = shared.part.local.get(hv, ())
    if shared.base != built_from.serial or local != built_from.local.get(hv, ()):
        return None
    if any(ip in shared.changed_ips for ep in local for ip in ep.ips):
        return None
    removed = [c for c in shared.removed if flows.pop(c, None) is not None]
    added = {c: f for c, f in shared.added.items() if c not in flows}
    flows.update(added)
    return added, removed


def specialise_lookup(shared: SharedLookup, local: tuple[Endpoint, ...]) -> dict[int, Flow]:
    """The lookup as one hypervisor has it: its own members (`local`) delivered locally."""
    flows = dict(shared.flows)
    net = shared.part.net
    eth_type, field = _ip(net)
    for ep in local:
        for ip in ep.ips:
            winner = shared.winners.get(ip)
            if winner is None or winner[0] != ep.mac:
                continue  # another member holds it (or it is not of the network's version)
            if winner[1] is not None:
                flows.pop(winner[1], None)
            f = _to_local(net.vni, eth_type, field, ip, ep.mac, ep.ofport)
            flows[f.cookie] = f
    return flows


def _remote_of(net: Network, keys: Mapping[str, int], ep: Endpoint, ip: str) -> Flow | None:
    """ip's lookup flow towards ep's hypervisor; None while that hypervisor is unknown."""
    rkey = keys.get(ep.hypervisor)
    if rkey is None:
        return None
    eth_type, field = _ip(net)
    return _to_remote(net.vni, eth_type, field, ip, ep.mac, rkey)


# One flow per (address, where it is): the same on every hypervisor that routes to it, so
# built and checked once (a part is rebuilt on every switch its network's change touches).
@lru_cache(maxsize=MEMO)
def _to_local(vni: int, eth_type: int, field: str, ip: str, mac: str, ofport: int) -> Flow:
    return check(flow(Stage.IN_L3_LOOKUP, P_NORMAL,
                      {REG_NETWORK: vni, "eth_type": eth_type, f"{field}_dst": ip},
                      [SetField("eth_dst", mac), Output(ofport)]))


@lru_cache(maxsize=MEMO)
def _to_remote(vni: int, eth_type: int, field: str, ip: str, mac: str, rkey: int) -> Flow:
    return check(flow(Stage.IN_L3_LOOKUP, P_LOOKUP_REMOTE,
                      {REG_NETWORK: vni, "eth_type": eth_type, f"{field}_dst": ip,
                       REG_FROM_TUNNEL: 0},
                      [SetField("eth_dst", mac), SetField("tunnel_id", vni),
                       SetField(REG_REMOTE, rkey)], goto=Stage.OUT_TUNNEL))


def _prefix(net: Network) -> tuple[str, str]:
    return str(net.subnet.network_address), str(net.subnet.netmask)


def _ip(net: Network) -> tuple[int, str]:
    return (ETH_IPV4, "ipv4") if net.subnet.version == 4 else (ETH_IPV6, "ipv6")
