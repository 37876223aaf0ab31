"""Announcements the controller sends for an endpoint: a gratuitous ARP (IPv4) or an
unsolicited neighbour advertisement (IPv6), as if from the VM, so that VMs holding a stale
entry for its address update it (built with os-ken's packet library: serialising is safe)."""

from __future__ import annotations

import ipaddress

from os_ken.lib.packet import arp, ethernet, icmpv6, ipv6, packet

BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"
ND_OVERRIDE = 0b001  # the O flag (os-ken's res field holds R, S, O from the top)


def announcement(mac: str, ip: str) -> bytes:
    """The frame that tells a network `ip` is at `mac`."""
    pkt = packet.Packet()
    if ipaddress.ip_address(ip).version == 4:
        pkt.add_protocol(ethernet.ethernet(BROADCAST, mac, ethernet.ether.ETH_TYPE_ARP))
        pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=mac, src_ip=ip,
                                 dst_mac="00:00:00:00:00:00", dst_ip=ip))
    else:
        pkt.add_protocol(ethernet.ethernet(ALL_NODES_MAC, mac, ethernet.ether.ETH_TYPE_IPV6))
        pkt.add_protocol(ipv6.ipv6(src=ip, dst=ALL_NODES, nxt=58, hop_limit=255))
        pkt.add_protocol(icmpv6.icmpv6(type_=icmpv6.ND_NEIGHBOR_ADVERT, data=icmpv6.nd_neighbor(
            res=ND_OVERRIDE, dst=ip, option=icmpv6.nd_option_tla(hw_src=mac))))
    pkt.serialize()
    return bytes(pkt.data)
