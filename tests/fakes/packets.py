"""Packets as the fake switch (tests/fakes/br_int.py) sees them, and as tests write them.

Here because both the switch and its conntrack model (tests/fakes/conntrack.py) read packets:
the packet type, the header constants, the field tables (which fields exist, how wide, which
are the pipeline's rather than the packet's), the encoding between the strings tests write
and the ints flows match, and the builders tests use (arp_request, ipv4, tcp, reply...).

A packet is a dict of header fields named like match fields; MACs and IPs are strings. The
IPv4 TTL and the IPv6 hop limit are both nw_ttl, as in OVS. Two fields OpenFlow cannot match
ride along for conntrack: icmp_id (an ICMP echo's identifier) and icmp_inner (the header an
ICMP error is about, a packet dict as that packet was sent). in_port and tunnel_id are
arguments; registers, ct_state and ct_zone start at 0 and are not part of the packet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

Header = dict[str, int | str]
Packet = dict[str, int | str | Header]  # only icmp_inner holds a Header

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
IP_TYPES = frozenset({ETH_IPV4, ETH_IPV6})
ARP_REQUEST, ARP_REPLY = 1, 2
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll",
                        "ipv6_nd_tll"})
IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
IPV6_FIELDS = frozenset({"ipv6_src", "ipv6_dst", "ipv6_nd_target"})
ND_SOLICIT, ND_ADVERT = 135, 136
ND_OPT_SOURCE_LL, ND_OPT_TARGET_LL = 1, 2
REGISTERS = tuple(f"reg{i}" for i in range(16))
CT_FIELDS = ("ct_state", "ct_zone", "ct_mark")
PIPELINE_FIELDS = frozenset({"in_port", "tunnel_id", *REGISTERS, *CT_FIELDS})  # not the packet
CARRIED_FIELDS = frozenset({"icmp_id", "icmp_inner"})  # in the packet, not matchable

FIELD_BITS: Mapping[str, int] = {
    **{name: 48 for name in MAC_FIELDS},
    **{name: 32 for name in IPV4_FIELDS},
    **{name: 128 for name in IPV6_FIELDS},
    **{name: 32 for name in REGISTERS},
    "in_port": 32, "tunnel_id": 64, "eth_type": 16, "vlan_vid": 13, "arp_op": 16,
    "ip_proto": 8, "ip_dscp": 6, "nw_ttl": 8, "tcp_src": 16, "tcp_dst": 16, "tcp_flags": 12,
    "udp_src": 16, "udp_dst": 16,
    "icmpv4_type": 8, "icmpv4_code": 8, "icmpv6_type": 8, "icmpv6_code": 8,
    "ct_state": 32, "ct_zone": 16, "ct_mark": 32, "nd_reserved": 32, "nd_options_type": 8,
}


class FakeTableError(Exception):
    """The fake cannot do what a test asked, e.g. a packet lacks a header an action needs.

    The base of the fake's errors (br_int.py's InvalidFlow and AmbiguousMatch too); it lives
    here, with the packets, so conntrack.py can raise it without importing the switch.
    """


# --- field values: strings for people, ints for matching and bit moves -------------------

def encode(name: str, value: int | str) -> int:
    bits = FIELD_BITS.get(name)
    if bits is None:
        raise KeyError(f"the fake table does not know field {name!r}")
    number = _parse(name, value) if isinstance(value, str) else value
    if not 0 <= number < 1 << bits:
        raise ValueError(f"{name}={value!r} does not fit in {bits} bits")
    return number


def decode(name: str, number: int) -> int | str:
    if name in MAC_FIELDS:
        text = f"{number:012x}"
        return ":".join(text[i:i + 2] for i in range(0, 12, 2))
    if name in IPV4_FIELDS:
        return str(ipaddress.IPv4Address(number))
    if name in IPV6_FIELDS:
        return str(ipaddress.IPv6Address(number))
    return number


def _parse(name: str, text: str) -> int:
    if name in MAC_FIELDS:
        return int(text.replace(":", ""), 16)
    if name in IPV4_FIELDS:
        return int(ipaddress.IPv4Address(text))
    if name in IPV6_FIELDS:
        return int(ipaddress.IPv6Address(text))
    raise ValueError(f"{name} takes an integer, not {text!r}")


def split_header(packet: Mapping[str, int | str | Header]
                 ) -> tuple[dict[str, int], dict[str, int | Header]]:
    """A packet's matchable fields as ints, and the fields that only ride along."""
    state: dict[str, int] = {}
    carried: dict[str, int | Header] = {}
    for name, value in packet.items():
        inner_ok = name == "icmp_inner" and isinstance(value, dict)
        if inner_ok or name == "icmp_id" and isinstance(value, int) and 0 <= value <= 0xFFFF:
            carried[name] = value
        elif name in CARRIED_FIELDS or isinstance(value, dict):
            raise ValueError(f"bad {name}={value!r}: icmp_inner is a packet dict, icmp_id a "
                             f"16-bit int, every other field an int or a string")
        else:
            state[name] = encode(name, value)
    return state, carried


def need(state: Mapping[str, int], *names: str) -> list[int]:
    """The values of fields an action needs; FakeTableError if the packet lacks any."""
    missing = [name for name in names if name not in state]
    if missing:
        raise FakeTableError(f"the packet needs {missing} for this action")
    return [state[name] for name in names]


# --- packets as tests write them -----------------------------------------------------------

def arp(op: int, sha: str, spa: str, tpa: str, tha: str = ZERO_MAC,
        eth_dst: str = BROADCAST_MAC) -> Packet:
    return {"eth_src": sha, "eth_dst": eth_dst, "eth_type": ETH_ARP, "arp_op": op,
            "arp_sha": sha, "arp_spa": spa, "arp_tha": tha, "arp_tpa": tpa}


def arp_request(sha: str, spa: str, tpa: str) -> Packet:
    return arp(ARP_REQUEST, sha, spa, tpa)


def ipv4(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = IPPROTO_ICMP) -> Packet:
    return {"eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IPV4,
            "ipv4_src": src, "ipv4_dst": dst, "ip_proto": proto}


def ipv6(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = IPPROTO_ICMPV6) -> Packet:
    return {"eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IPV6,
            "ipv6_src": src, "ipv6_dst": dst, "ip_proto": proto}


def neighbour_solicitation(mac: str, src: str, target: str, with_mac: bool = True) -> Packet:
    """Who has target? From src (:: for duplicate address detection, which sends no MAC), to
    the target's solicited-node multicast group; the source link-layer option carries mac.
    As OVS parses it: the option's MAC in ipv6_nd_sll, none in ipv6_nd_tll."""
    group = ipaddress.IPv6Address(target).packed[-3:]
    sll = mac if with_mac and src != "::" else ZERO_MAC
    return {**ipv6(mac, "33:33:ff:" + group.hex(":"), src,
                   str(ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + group))),
            "nw_ttl": 255, "icmpv6_type": ND_SOLICIT, "icmpv6_code": 0,
            "ipv6_nd_target": target, "ipv6_nd_sll": sll, "ipv6_nd_tll": ZERO_MAC,
            "nd_reserved": 0, "nd_options_type": ND_OPT_SOURCE_LL if sll != ZERO_MAC else 0}


def nd_as_sent(packet: Packet) -> Packet:
    """An ND packet as its bytes leave the switch: OVS writes the option's MAC from nd_sll
    only if the option is (by then) a source link-layer option, from nd_tll only if a target
    one; a receiver parses it back by its type."""
    kind = packet.get("nd_options_type")
    if packet.get("icmpv6_type") not in (ND_SOLICIT, ND_ADVERT) or kind is None:
        return packet
    mac = {ND_OPT_SOURCE_LL: packet.get("ipv6_nd_sll"),
           ND_OPT_TARGET_LL: packet.get("ipv6_nd_tll")}.get(int(str(kind)), ZERO_MAC)
    return {**packet,
            "ipv6_nd_sll": mac if kind == ND_OPT_SOURCE_LL else ZERO_MAC,
            "ipv6_nd_tll": mac if kind == ND_OPT_TARGET_LL else ZERO_MAC}


def ip(eth_src: str, eth_dst: str, src: str, dst: str, proto: int, ttl: int = 64) -> Packet:
    """An IPv4 or IPv6 packet (by the form of its addresses) with a TTL, for dec_ttl."""
    build = ipv6 if ":" in src else ipv4
    return {**build(eth_src, eth_dst, src, dst, proto), "nw_ttl": ttl}


def tcp(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int,
        flags: int | None = None, ttl: int = 64) -> Packet:
    """A TCP segment; without flags conntrack tracks it like UDP (no +inv for a lone ACK)."""
    packet = {**ip(eth_src, eth_dst, src, dst, IPPROTO_TCP, ttl), "tcp_src": sport,
              "tcp_dst": dport}
    return packet if flags is None else {**packet, "tcp_flags": flags}


def udp(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int,
        ttl: int = 64) -> Packet:
    return {**ip(eth_src, eth_dst, src, dst, IPPROTO_UDP, ttl), "udp_src": sport,
            "udp_dst": dport}


def icmp_echo(eth_src: str, eth_dst: str, src: str, dst: str, ident: int,
              reply: bool = False, ttl: int = 64) -> Packet:
    v4 = ":" not in src
    request, answer = (8, 0) if v4 else (128, 129)
    packet = ip(eth_src, eth_dst, src, dst, IPPROTO_ICMP if v4 else IPPROTO_ICMPV6, ttl)
    kind = "icmpv4" if v4 else "icmpv6"
    return {**packet, f"{kind}_type": answer if reply else request, f"{kind}_code": 0,
            "icmp_id": ident}


def icmp_error(eth_src: str, eth_dst: str, src: str, dst: str, about: Packet,
               icmp_type: int | None = None, code: int = 0, ttl: int = 64) -> Packet:
    """An ICMP error about a packet (destination unreachable unless told otherwise)."""
    v4 = ":" not in src
    packet = ip(eth_src, eth_dst, src, dst, IPPROTO_ICMP if v4 else IPPROTO_ICMPV6, ttl)
    kind, unreachable = ("icmpv4", 3) if v4 else ("icmpv6", 1)
    inner = {k: v for k, v in about.items() if not isinstance(v, dict)}
    return {**packet, f"{kind}_type": unreachable if icmp_type is None else icmp_type,
            f"{kind}_code": code, "icmp_inner": inner}


_SWAPS = (("eth_src", "eth_dst"), ("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"),
          ("tcp_src", "tcp_dst"), ("udp_src", "udp_dst"))
_ANSWERS = {("icmpv4_type", 8): 0, ("icmpv6_type", 128): 129}


def reply(packet: Packet) -> Packet:
    """The answer to a packet: MACs, addresses and ports swapped, an echo request answered,
    a bare SYN answered with SYN|ACK."""
    out = dict(packet)
    for a, b in _SWAPS:
        if a in packet and b in packet:
            out[a], out[b] = packet[b], packet[a]
    for (name, request), answer in _ANSWERS.items():
        if packet.get(name) == request:
            out[name] = answer
    if packet.get("tcp_flags") == TCP_SYN:
        out["tcp_flags"] = TCP_SYN | TCP_ACK
    return out
