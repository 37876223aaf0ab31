"""Frames as a VM sends them, built with os-ken's packet library (serialising is safe)."""

from __future__ import annotations

from os_ken.lib.packet import arp, ethernet, icmpv6, ipv4, ipv6, packet

BROADCAST = "ff:ff:ff:ff:ff:ff"


def arp_frame(mac: str, spa: str, tpa: str, op: int = arp.ARP_REQUEST,
              sha: str | None = None) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(BROADCAST, mac, ethernet.ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=op, src_mac=sha or mac, src_ip=spa, dst_ip=tpa))
    pkt.serialize()
    return bytes(pkt.data)


def ipv4_frame(mac: str, src: str, dst: str, dst_mac: str = "02:d0:ee:00:00:01") -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst_mac, mac, ethernet.ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=17))
    pkt.serialize()
    return bytes(pkt.data) + bytes(8)


def nd_frame(mac: str, src: str, target: str, kind: int) -> bytes:
    """A neighbour solicitation (135) or advertisement (136) about target."""
    body = (icmpv6.nd_neighbor(dst=target) if kind == icmpv6.ND_NEIGHBOR_SOLICIT
            else icmpv6.nd_neighbor(res=3, dst=target))
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet("33:33:00:00:00:01", mac, ethernet.ether.ETH_TYPE_IPV6))
    pkt.add_protocol(ipv6.ipv6(src=src, dst="ff02::1", nxt=58, hop_limit=255))
    pkt.add_protocol(icmpv6.icmpv6(type_=kind, data=body))
    pkt.serialize()
    return bytes(pkt.data)


def ipv6_frame(mac: str, src: str, dst: str) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet("02:d0:ee:00:00:01", mac, ethernet.ether.ETH_TYPE_IPV6))
    pkt.add_protocol(ipv6.ipv6(src=src, dst=dst, nxt=17))
    pkt.serialize()
    return bytes(pkt.data) + bytes(8)
