"""Messages a switch sends that os-ken can parse but not build (its reply classes serialize
no body): flow-stats replies and packet-ins, laid out by hand as OVS sends them. Their
layout is checked against os-ken's parser (tests/unit/openflow/test_replies_fuzz.py)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

HEADER = struct.Struct("!BBHI")
_ENTRY = struct.Struct("!HBxIIHHHH4xQQQ")  # ofp_flow_stats up to its match


def match_bytes(match: parser.OFPMatch | None = None) -> bytes:
    """An OXM match, padded to 8 bytes as it is on the wire."""
    buf = bytearray()
    (match or parser.OFPMatch()).serialize(buf, 0)
    return bytes(buf)


def flow_stats_reply(xid: int, cookies: Sequence[int], more: bool = False,
                     table_id: int = 0, priority: int = 100,
                     packets: Sequence[int] | None = None) -> bytes:
    match = match_bytes()
    counts = packets if packets is not None else [0] * len(cookies)
    entries = b"".join(_ENTRY.pack(_ENTRY.size + len(match), table_id, 0, 0, priority, 0, 0, 0,
                                   cookie, count, 0) + match
                       for cookie, count in zip(cookies, counts, strict=True))
    body = struct.pack("!HH4x", ofp.OFPMP_FLOW, ofp.OFPMPF_REPLY_MORE if more else 0) + entries
    return HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 8 + len(body), xid) + body


def packet_in(xid: int, data: bytes, reason: int = ofp.OFPR_ACTION, table_id: int = 0,
              cookie: int = 0, match: parser.OFPMatch | None = None) -> bytes:
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), reason, table_id, cookie)
    body += match_bytes(match) + b"\x00\x00" + data
    return HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), xid) + body


def flow_removed(xid: int, cookie: int, reason: int = ofp.OFPRR_IDLE_TIMEOUT,
                 table_id: int = 0, idle_timeout: int = 0,
                 match: parser.OFPMatch | None = None) -> bytes:
    """As OVS sends it when a flow with OFPFF_SEND_FLOW_REM goes (os-ken only parses it)."""
    body = struct.pack("!QHBBIIHHQQ", cookie, 100, reason, table_id, 1, 0, idle_timeout, 0,
                       1, 60) + match_bytes(match)
    return HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_REMOVED, 8 + len(body), xid) + body
