"""What a switch says back, parsed totally: every length checked before it is used.

A switch is a peer like any other and may be broken or hostile. os-ken's parsers trust the
lengths inside a message (a flow-stats entry of length 0 loops its parser forever), so the
few messages the controller acts on are read here instead, and only the fields it uses:
the cookies of a flow dump, a bundle reply's id, an error's type and code, a packet-in's
header. A message whose lengths do not add up raises MalformedMessage and its connection is
closed (ryu_dove.openflow.connection); a type the controller does not act on is ignored.
Nothing here loops longer than the message is long.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as OFP

from ryu_dove.events import MessageKind

_HEADER = 8
_MULTIPART = struct.Struct("!HH4x")  # type, flags (after the header)
_FLOW_STATS_MIN = OFP.OFP_FLOW_STATS_SIZE  # one entry with an empty match
_COOKIE_AT = 24  # offset of the cookie in an ofp_flow_stats entry; its packet count follows
_EXPERIMENTER = struct.Struct("!II")  # experimenter id, its message type
_BUNDLE_CTRL = struct.Struct("!IHH")  # bundle id, control type, flags
_ERROR = struct.Struct("!HH")
_PACKET_IN = struct.Struct("!IHBBQHH")  # buffer id, total len, reason, table, cookie, match
_FLOW_REMOVED = struct.Struct("!QHBB")  # cookie, priority, reason, table (then counters)
_OXM = struct.Struct("!HBB")  # class, field << 1 | has-mask, payload length
_OXM_IN_PORT = (0x8000, 0)  # OFPXMC_OPENFLOW_BASIC, OFPXMT_OFB_IN_PORT
_MAX_DATA = 256  # bytes of a packet-in or error payload kept (logs, later learning)


class MalformedMessage(ValueError):
    """A message from a switch whose lengths or fields do not add up."""


@dataclass(frozen=True, slots=True)
class BarrierReply:
    datapath: Any  # the connection it came on (a late answer on a replaced one is ignored)
    xid: int


@dataclass(frozen=True, slots=True)
class FlowStatsReply:
    """One part of a flow dump: the cookies of its entries; more parts follow if `more`."""

    datapath: Any
    xid: int
    more: bool
    cookies: tuple[int, ...]
    packets: tuple[int, ...] = ()  # each entry's packet count, in the same order


@dataclass(frozen=True, slots=True)
class BundleReply:
    datapath: Any
    xid: int
    bundle_id: int
    kind: int  # ONF_BCT_*_REPLY


@dataclass(frozen=True, slots=True)
class ErrorReply:
    datapath: Any
    xid: int
    type: int
    code: int
    data: bytes  # the start of the offending message


@dataclass(frozen=True, slots=True)
class PacketIn:
    datapath: Any
    xid: int
    reason: int
    table_id: int
    cookie: int
    in_port: int | None  # the port the packet came in on (None: the match did not say)
    data: bytes  # the start of the frame


@dataclass(frozen=True, slots=True)
class FlowRemoved:
    datapath: Any
    xid: int
    cookie: int
    reason: int  # OFPRR_IDLE_TIMEOUT (0), HARD_TIMEOUT, DELETE, GROUP_DELETE, METER_DELETE
    table_id: int


Reply = BarrierReply | FlowStatsReply | BundleReply | ErrorReply | PacketIn | FlowRemoved


def parse(datapath: Any, msg_type: int, xid: int, msg: bytes,
          ) -> tuple[MessageKind, Reply] | None:
    """The reply in a whole message (its header's length already checked against `msg`);
    None for a type the controller does not act on. Raises MalformedMessage."""
    if msg_type == OFP.OFPT_BARRIER_REPLY:
        return MessageKind.BARRIER, BarrierReply(datapath, xid)
    if msg_type == OFP.OFPT_MULTIPART_REPLY:
        stats = _flow_stats(datapath, xid, msg)
        return (MessageKind.FLOW_STATS, stats) if stats is not None else None
    if msg_type == OFP.OFPT_EXPERIMENTER:
        bundle = _bundle_reply(datapath, xid, msg)
        return (MessageKind.BUNDLE, bundle) if bundle is not None else None
    if msg_type == OFP.OFPT_ERROR:
        return MessageKind.ERROR, error(datapath, xid, msg)
    if msg_type == OFP.OFPT_PACKET_IN:
        return MessageKind.PACKET_IN, _packet_in(datapath, xid, msg)
    if msg_type == OFP.OFPT_FLOW_REMOVED:
        return MessageKind.FLOW_REMOVED, _flow_removed(datapath, xid, msg)
    return None


def error(datapath: Any, xid: int, msg: bytes) -> ErrorReply:
    _need(msg, _HEADER + _ERROR.size, "error")
    kind, code = _ERROR.unpack_from(msg, _HEADER)
    return ErrorReply(datapath, xid, kind, code, msg[_HEADER + _ERROR.size:][:_MAX_DATA])


def _flow_stats(datapath: Any, xid: int, msg: bytes) -> FlowStatsReply | None:
    _need(msg, _HEADER + _MULTIPART.size, "multipart reply")
    mp_type, flags = _MULTIPART.unpack_from(msg, _HEADER)
    if mp_type != OFP.OFPMP_FLOW:
        return None  # never asked for: nothing to act on
    cookies, packets, pos, end = [], [], _HEADER + _MULTIPART.size, len(msg)
    while pos < end:
        length = struct.unpack_from("!H", msg, pos)[0] if end - pos >= 2 else 0
        if length < _FLOW_STATS_MIN or length % 8 or pos + length > end:
            raise MalformedMessage(f"flow stats entry of length {length} at byte {pos} of a "
                                   f"{end}-byte reply")
        cookie, count = struct.unpack_from("!QQ", msg, pos + _COOKIE_AT)
        cookies.append(cookie)
        packets.append(count)
        pos += length
    return FlowStatsReply(datapath, xid, bool(flags & OFP.OFPMPF_REPLY_MORE), tuple(cookies),
                          tuple(packets))


def _bundle_reply(datapath: Any, xid: int, msg: bytes) -> BundleReply | None:
    _need(msg, _HEADER + _EXPERIMENTER.size, "experimenter message")
    experimenter, exp_type = _EXPERIMENTER.unpack_from(msg, _HEADER)
    if (experimenter, exp_type) != (ofproto_common.ONF_EXPERIMENTER_ID,
                                    OFP.ONF_ET_BUNDLE_CONTROL):
        return None
    _need(msg, _HEADER + _EXPERIMENTER.size + _BUNDLE_CTRL.size, "bundle control")
    bundle_id, kind, _ = _BUNDLE_CTRL.unpack_from(msg, _HEADER + _EXPERIMENTER.size)
    return BundleReply(datapath, xid, bundle_id, kind)


def _packet_in(datapath: Any, xid: int, msg: bytes) -> PacketIn:
    _need(msg, _HEADER + _PACKET_IN.size, "packet-in")
    _, _, reason, table_id, cookie, _, match_len = _PACKET_IN.unpack_from(msg, _HEADER)
    match_at = _HEADER + _PACKET_IN.size - 4  # the match's own header counts in its length
    data_at = match_at + (match_len + 7) // 8 * 8 + 2
    if match_len < 4 or data_at > len(msg):
        raise MalformedMessage(f"packet-in with a match of length {match_len} in "
                               f"{len(msg)} bytes")
    in_port = _in_port(msg[match_at + 4:match_at + match_len])
    return PacketIn(datapath, xid, reason, table_id, cookie, in_port,
                    msg[data_at:][:_MAX_DATA])


def _in_port(oxms: bytes) -> int | None:
    """The in_port among a match's OXM fields; every field's length is checked."""
    pos, found = 0, None
    while pos < len(oxms):
        if len(oxms) - pos < _OXM.size:
            raise MalformedMessage(f"match ends inside an OXM header at byte {pos}")
        oxm_class, field, length = _OXM.unpack_from(oxms, pos)
        if pos + _OXM.size + length > len(oxms):
            raise MalformedMessage(f"OXM field of length {length} at byte {pos} overruns "
                                   f"a match of {len(oxms)} bytes")
        if (oxm_class, field >> 1) == _OXM_IN_PORT:
            if length != 4 or field & 1:
                raise MalformedMessage(f"in_port field of length {length}")
            found = struct.unpack_from("!I", oxms, pos + _OXM.size)[0]
        pos += _OXM.size + length
    return found


def _flow_removed(datapath: Any, xid: int, msg: bytes) -> FlowRemoved:
    _need(msg, _HEADER + _FLOW_REMOVED.size, "flow-removed")
    cookie, _, reason, table_id = _FLOW_REMOVED.unpack_from(msg, _HEADER)
    return FlowRemoved(datapath, xid, cookie, reason, table_id)


def _need(msg: bytes, size: int, what: str) -> None:
    if len(msg) < size:
        raise MalformedMessage(f"{what} of {len(msg)} bytes, needs at least {size}")
