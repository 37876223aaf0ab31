"""The OpenFlow pipeline of br-int, declared once: stages, their tables, and the registers.

Tables are numbered from this declaration only; flows, tests, logs and docs/pipeline.md
speak stage names. Each stage lists the match fields its flows may use and the stages it may
jump to, and every computed flow is checked against that (ryu_dove.pipeline.flows.check_flow).

Stage names (decided before routing lands; docs/pipeline.md): `IN_*` stages run where the
packet entered br-int and decide where it goes and whether it may (classification, port
security, the ARP/ND responders, routing, policy, L2 lookup); `OUT_*` stages run once the
destination is decided and only deliver it (the tunnel to a remote hypervisor; later a local
egress stage). The rest of the name is the job, OVN-style (`in_l3_route`, `in_acl`).
Tables go up in tens so a stage can be inserted between two without renumbering.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache


@dataclass(frozen=True)
class StageSpec:
    table: int
    doc: str
    fields: frozenset[str]
    next: tuple[str, ...]  # stage names this stage may goto
    recirculates: tuple[str, ...] = ()  # and, through conntrack only, may resume in


# Register contract (docs/pipeline.md): set in in_classify, read downstream.
REG_NETWORK = "reg0"  # VNI of the packet's network
REG_FROM_TUNNEL = "reg1"  # 1 when the packet arrived from another hypervisor
REG_REMOTE = "reg2"  # the remote hypervisor a unicast frame is for (ryu_dove.tunnel_ids)
REG_ZONE = "reg3"  # a routed packet's conntrack zone: its tenant's
REG_FROM_NETWORK = "reg4"  # a routed packet's source network (VNI); reg0 is then the
# destination's
REG_TRACK_HERE = "reg5"  # 1: a routed packet still to pass conntrack if it is delivered here


class Stage(Enum):
    IN_CLASSIFY = StageSpec(
        0, "VM port (with its MAC) or tunnel key -> network in reg0; anything else dropped",
        frozenset({"in_port", "eth_src", "tunnel_id"}), ("IN_PORT_SEC", "IN_L3_ROUTE"))
    IN_PORT_SEC = StageSpec(
        10, "source IP of a VM must be one of its bound addresses (ARP and IPv4/IPv6)",
        frozenset({"in_port", "eth_type", "arp_spa", "arp_sha", "arp_tpa", "ipv4_src",
                   "ipv6_src", "ip_proto", "icmpv6_type"}),
        ("IN_ARP_RESPONDER", "IN_L2_LOOKUP"))
    IN_ARP_RESPONDER = StageSpec(
        20, "ARP requests and IPv6 neighbour solicitations for known endpoints and the "
        "gateway answered inside OVS; others kept off the underlay",
        frozenset({REG_NETWORK, REG_FROM_TUNNEL, "eth_type", "arp_op", "arp_tpa", "arp_spa",
                   "ip_proto", "icmpv6_type", "ipv6_nd_target", "ipv6_nd_sll"}),
        ("IN_ND_REPLY", "IN_L3_ROUTE", "IN_L2_LOOKUP"))
    IN_ND_REPLY = StageSpec(
        21, "a solicitation the responder turned into an advertisement: the target's MAC "
        "written into its target link-layer option (OVS accepts that write only where the "
        "match says advertisement), and sent back",
        frozenset({"eth_type", "ip_proto", "icmpv6_type"}), ())
    IN_L3_ROUTE = StageSpec(
        22, "to the gateway MAC, for another network of the tenant that a rule connects: "
            "routed (destination network in reg0, source in reg4, zone in reg3, TTL "
            "decremented); routed packets arriving by tunnel marked the same way; each on "
            "to conntrack where its connection is tracked, to the stateless check elsewhere; "
            "the rest of the gateway's traffic dropped, everything else on to L2",
        frozenset({REG_NETWORK, REG_FROM_TUNNEL, "eth_dst", "eth_src", "eth_type",
                   "ipv4_dst", "ipv4_src", "ipv6_dst", "ipv6_src"}),
        ("IN_ACL", "IN_ACL_STATE", "IN_L2_LOOKUP"))
    IN_ACL = StageSpec(
        24, "a routed packet whose connection this hypervisor tracks through conntrack, in "
            "its tenant's zone",
        frozenset({"eth_type"}), ("IN_ACL_STATE",))
    IN_ACL_STATE = StageSpec(
        26, "tracked: established and related packets of connections a rule still allows "
            "pass (by the rule's ct_mark), a new connection a rule allows is committed with "
            "the rule's mark; untracked (only the other end tracks): only what a rule's "
            "connections look like passes; everything else is dropped",
        frozenset({"ct_state", "ct_mark", REG_ZONE, REG_FROM_NETWORK, REG_NETWORK, "eth_type",
                   "ip_proto", "tcp_dst", "udp_dst", "tcp_src", "udp_src", "icmpv4_type",
                   "icmpv6_type"}),
        ("IN_L3_LOOKUP",))
    IN_L3_LOOKUP = StageSpec(
        28, "a routed packet's destination address -> the endpoint's MAC, then its local "
            "port or the tunnel to its hypervisor; an address nobody holds is dropped; a "
            "packet still to be tracked (reg5) goes through conntrack before local delivery",
        frozenset({REG_NETWORK, REG_FROM_TUNNEL, REG_TRACK_HERE, "eth_type", "ipv4_dst",
                   "ipv6_dst"}),
        ("OUT_TUNNEL",), recirculates=("IN_ACL_STATE",))
    IN_L2_LOOKUP = StageSpec(
        30, "destination MAC -> local port or remote hypervisor's tunnel; BUM to the "
            "network's local ports and hosting hypervisors; unknown dropped",
        frozenset({REG_NETWORK, REG_FROM_TUNNEL, "eth_dst"}), ("OUT_TUNNEL",))
    OUT_TUNNEL = StageSpec(
        40, "remote hypervisor in reg2 -> the tunnel port to it; no tunnel yet: dropped",
        frozenset({REG_REMOTE}), ())

    @property
    def table(self) -> int:
        return self.value.table

    @property
    def cookie_id(self) -> int:
        return _COOKIE_IDS[self]

    @classmethod
    def by_table(cls, table: int) -> Stage:
        for stage in cls:
            if stage.table == table:
                return stage
        raise KeyError(f"no stage uses table {table}")


# A stage's byte in its flows' cookies, fixed once given: a stage inserted between others
# must not change their cookies (every flow of theirs would be reinstalled on upgrade).
_COOKIE_IDS = {Stage.IN_CLASSIFY: 1, Stage.IN_PORT_SEC: 2, Stage.IN_ARP_RESPONDER: 3,
               Stage.IN_L2_LOOKUP: 4, Stage.OUT_TUNNEL: 5, Stage.IN_L3_ROUTE: 6,
               Stage.IN_ACL: 7, Stage.IN_ACL_STATE: 8, Stage.IN_L3_LOOKUP: 9,
               Stage.IN_ND_REPLY: 10}
assert set(_COOKIE_IDS) == set(Stage) and len(set(_COOKIE_IDS.values())) == len(Stage)


@cache  # asked once per distinct flow checked
def allowed_next(stage: Stage) -> tuple[Stage, ...]:
    return tuple(Stage[name] for name in stage.value.next)


@cache
def allowed_recirculation(stage: Stage) -> tuple[Stage, ...]:
    """Stages a ct(table=) of this stage may resume in besides allowed_next(): recirculation
    may go back (OVS allows it; goto may not)."""
    return tuple(Stage[name] for name in stage.value.recirculates)
