"""What a punted frame says about its sender: the addresses it claims, parsed totally.

A punt is the first bytes of a frame a VM sent, so it is hostile input. It is read here
field by field with every length checked, on a whitelist of the few shapes that can teach an
address (ARP, an IPv4 or IPv6 header, an IPv6 neighbour solicitation or advertisement);
anything else claims nothing. Not os-ken's packet library: its Packet() loops forever on
some TCP options and its ND option parser trusts option lengths
(docs/research/punts-ovs-3.1.md, section 6).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH = struct.Struct("!6s6sH")
ARP = struct.Struct("!HHBBH6s4s6s4s")
IPV6 = struct.Struct("!I2xBB16s16s")  # version/class/label, (length), next header, hops
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
ICMPV6, ND_NS, ND_NA = 58, 135, 136
ND_TARGET_AT = 8  # in an NS or NA: type, code, checksum, flags/reserved, then the target


@dataclass(frozen=True)
class Claim:
    mac: str  # the frame's source MAC
    ip: str  # an address the sender says is its own
    how: str  # "arp", "garp", "ipv4", "ipv6", "dad", "na", "ns"


def claims(frame: bytes) -> list[Claim]:
    """The addresses a frame from a VM claims as its sender's; [] for anything else."""
    if len(frame) < ETH.size:
        return []
    _, src, eth_type = ETH.unpack_from(frame)
    mac, body = _mac(src), frame[ETH.size:]
    if eth_type == ETH_ARP:
        return _arp(mac, src, body)
    if eth_type == ETH_IPV4:
        return _ipv4(mac, body)
    if eth_type == ETH_IPV6:
        return _ipv6(mac, body)
    return []


def _arp(mac: str, eth_src: bytes, body: bytes) -> list[Claim]:
    if len(body) < ARP.size:
        return []
    htype, ptype, hlen, plen, op, sha, spa, _, tpa = ARP.unpack_from(body)
    if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4) or op not in (1, 2):
        return []
    if sha != eth_src:  # a frame speaking for another MAC teaches nothing
        return []
    sender = ipaddress.IPv4Address(spa)
    if sender.is_unspecified:  # a probe (RFC 5227): asks, claims nothing
        return []
    return _unicast(mac, sender, "garp" if spa == tpa else "arp")


def _ipv4(mac: str, body: bytes) -> list[Claim]:
    if len(body) < 20 or body[0] >> 4 != 4 or body[0] & 0x0F < 5:
        return []
    return _unicast(mac, ipaddress.IPv4Address(body[12:16]), "ipv4")


def _ipv6(mac: str, body: bytes) -> list[Claim]:
    if len(body) < IPV6.size:
        return []
    first, next_header, _, src_raw, _ = IPV6.unpack_from(body)
    if first >> 28 != 6:
        return []
    src, icmp = ipaddress.IPv6Address(src_raw), body[IPV6.size:]
    if next_header == ICMPV6 and len(icmp) >= ND_TARGET_AT + 16 and icmp[0] in (ND_NS, ND_NA):
        target = ipaddress.IPv6Address(icmp[ND_TARGET_AT:ND_TARGET_AT + 16])
        if icmp[0] == ND_NA:  # the advertiser's own address
            return _unicast(mac, target, "na") + _unicast(mac, src, "ipv6")
        if src.is_unspecified:  # duplicate address detection: the address it takes
            return _unicast(mac, target, "dad")
        return _unicast(mac, src, "ns")
    return _unicast(mac, src, "ipv6")


def _unicast(mac: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
             how: str) -> list[Claim]:
    """Only an address a host can hold (not link-local: those never enter the directory)."""
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_loopback:
        return []
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return []
    return [Claim(mac, str(ip), how)]


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
