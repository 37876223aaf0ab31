"""The OpenFlow 1.3 the fake switches speak, with `struct` on raw headers: the message types,
offsets and layouts they need, the replies they build, and the one match field they read
(an exact eth_dst). Pure functions, no I/O."""

from __future__ import annotations

import struct

OFP_VERSION = 0x04
OFPT_HELLO, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_EXPERIMENTER = 0, 2, 3, 4
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_FLOW_MOD = 5, 6, 14
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 3, 4
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL, ONF_ET_BUNDLE_ADD_MESSAGE = 2300, 2301
ONF_BCT_OPEN_REQUEST, ONF_BCT_COMMIT_REQUEST, ONF_BCT_DISCARD_REQUEST = 0, 4, 6
OXM_ETH_DST = (0x8000 << 16) | (3 << 9) | 6  # OpenFlow basic class, field 3, no mask, 6 bytes
CAPABILITIES = 0x4F  # flow, table, port, group stats; IP reassembly off; queue stats

HEADER = struct.Struct("!BBHI")  # version, type, length, xid
FEATURES_REPLY = struct.Struct("!BBHIQIBB2xII")  # + datapath_id n_buffers n_tables aux caps rsv
MULTIPART_HEAD = struct.Struct("!BBHIHH4x")  # + type, flags
EXPERIMENTER_HEAD = struct.Struct("!II")  # experimenter, exp_type (after the header)
BUNDLE_CTRL = struct.Struct("!IHH")  # bundle_id, type, flags (after the experimenter head)
BUNDLE_CTRL_MSG = struct.Struct("!BBHIIIIHH")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")

BUNDLE_ADD_INNER = 24  # header 8 + experimenter 8 + bundle_id 4 + pad 2 + flags 2
FLOW_MOD_COMMAND = 25  # offsets inside a flow-mod: command byte, match length, first OXM
FLOW_MOD_MATCH = 48


def hello(xid: int = 0) -> bytes:
    return HEADER.pack(OFP_VERSION, OFPT_HELLO, HEADER.size, xid)


def features_reply(xid: int, dpid: int) -> bytes:
    return FEATURES_REPLY.pack(OFP_VERSION, OFPT_FEATURES_REPLY, FEATURES_REPLY.size, xid,
                               dpid, 0, 254, 0, CAPABILITIES, 0)


def empty_multipart_reply(xid: int, mp_type: int) -> bytes:
    return MULTIPART_HEAD.pack(OFP_VERSION, OFPT_MULTIPART_REPLY, MULTIPART_HEAD.size, xid,
                               mp_type, 0)


def bundle_ctrl_reply(xid: int, bundle_id: int, request_type: int, flags: int) -> bytes:
    """The reply to a bundle control request: same xid and bundle id, type + 1 (…_REPLY)."""
    return BUNDLE_CTRL_MSG.pack(OFP_VERSION, OFPT_EXPERIMENTER, BUNDLE_CTRL_MSG.size, xid,
                                ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL, bundle_id,
                                request_type + 1, flags)


def reply_header(buf: bytes | bytearray, off: int, length: int, new_type: int) -> bytes:
    """Echo or barrier reply: the request with its type changed (body kept)."""
    out = bytearray(buf[off:off + length])
    out[1] = new_type
    return bytes(out)


def eth_dst(buf: bytes | bytearray, fm: int) -> bytes | None:
    """The exact eth_dst of the flow-mod starting at `fm`, if its match has one."""
    mlen = U16.unpack_from(buf, fm + FLOW_MOD_MATCH + 2)[0]
    p, end = fm + FLOW_MOD_MATCH + 4, fm + FLOW_MOD_MATCH + mlen
    while p + 4 <= end:
        head = U32.unpack_from(buf, p)[0]
        if head == OXM_ETH_DST:
            return bytes(buf[p + 4:p + 10])
        p += 4 + (head & 0xFF)
    return None


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))
