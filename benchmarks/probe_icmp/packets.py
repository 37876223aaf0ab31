"""ICMP echo requests, built with `struct`: one pair's requests differ only in their
sequence number, so the checksum is precomputed but for it."""

from __future__ import annotations

import struct

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    return total


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, nonce: bytes) -> bytes:
    """An ICMP echo request; the payload is the run's nonce, padded to 8 bytes."""
    payload = nonce.ljust(8, b"\0")
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    csum = _fold(_ones_sum(header + payload))
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ident, seq) + payload


class EchoTemplate:
    """Echo requests of one pair: only the sequence number (and so the checksum) changes."""

    __slots__ = ("ident", "payload", "base")

    def __init__(self, ident: int, nonce: bytes) -> None:
        self.ident = ident
        self.payload = nonce.ljust(8, b"\0")
        self.base = _ones_sum(struct.pack("!BBHH", ICMP_ECHO_REQUEST, 0, 0, ident)
                              + self.payload)

    def packet(self, seq: int) -> bytes:
        csum = _fold(self.base + seq)
        return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, self.ident, seq) + self.payload


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
