"""What a punted frame claims: the few shapes that teach an address, and nothing from the
rest, whatever the bytes (the parser is fuzzed: it never raises and never loops)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import arp, icmpv6

from ryu_dove.learning.frames import Claim, claims
from tests.unit.learning.frames_build import arp_frame, ipv4_frame, ipv6_frame, nd_frame

MAC = "02:00:00:00:00:0a"


def test_an_arp_request_claims_its_sender_address() -> None:
    assert claims(arp_frame(MAC, "192.0.2.10", "192.0.2.1")) == [
        Claim(MAC, "192.0.2.10", "arp")]


def test_a_gratuitous_arp_and_a_reply_claim_theirs() -> None:
    assert claims(arp_frame(MAC, "192.0.2.10", "192.0.2.10")) == [
        Claim(MAC, "192.0.2.10", "garp")]
    assert claims(arp_frame(MAC, "192.0.2.10", "192.0.2.20", op=arp.ARP_REPLY)) == [
        Claim(MAC, "192.0.2.10", "arp")]


def test_a_probe_and_an_arp_for_another_mac_claim_nothing() -> None:
    assert claims(arp_frame(MAC, "0.0.0.0", "192.0.2.10")) == []
    assert claims(arp_frame(MAC, "192.0.2.10", "192.0.2.1", sha="02:00:00:00:00:0b")) == []


def test_an_ip_packet_claims_its_source() -> None:
    assert claims(ipv4_frame(MAC, "192.0.2.10", "198.51.100.7")) == [
        Claim(MAC, "192.0.2.10", "ipv4")]
    assert claims(ipv4_frame(MAC, "0.0.0.0", "255.255.255.255")) == []  # a DHCP discover
    assert claims(ipv6_frame(MAC, "2001:db8::10", "2001:db8::1")) == [
        Claim(MAC, "2001:db8::10", "ipv6")]
    assert claims(ipv6_frame(MAC, "fe80::1", "2001:db8::1")) == []  # link-local


def test_neighbour_discovery_claims_what_the_sender_takes_or_holds() -> None:
    ns, na = icmpv6.ND_NEIGHBOR_SOLICIT, icmpv6.ND_NEIGHBOR_ADVERT
    assert claims(nd_frame(MAC, "::", "2001:db8::10", ns)) == [
        Claim(MAC, "2001:db8::10", "dad")]
    assert claims(nd_frame(MAC, "fe80::a", "2001:db8::10", na)) == [
        Claim(MAC, "2001:db8::10", "na")]
    assert claims(nd_frame(MAC, "2001:db8::11", "2001:db8::1", ns)) == [
        Claim(MAC, "2001:db8::11", "ns")]


VALID = [arp_frame(MAC, "192.0.2.10", "192.0.2.1"), ipv4_frame(MAC, "192.0.2.10", "192.0.2.1"),
         nd_frame(MAC, "::", "2001:db8::10", icmpv6.ND_NEIGHBOR_SOLICIT),
         ipv6_frame(MAC, "2001:db8::10", "2001:db8::1")]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_to_claims_or_nothing(data: bytes) -> None:
    for claim in claims(data):
        assert not ipaddress.ip_address(claim.ip).is_unspecified


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.integers(0, 127), st.integers(0, 255), st.integers(0, 128))
def test_damaged_frames_parse_to_claims_or_nothing(frame: bytes, at: int, byte: int,
                                                   cut: int) -> None:
    damaged = bytearray(frame)
    damaged[at % len(damaged)] = byte
    for claim in claims(bytes(damaged[:cut])):
        ipaddress.ip_address(claim.ip)
