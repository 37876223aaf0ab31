"""A message-level fake OVS for reconciler and engine tests: it reads the bytes the controller
sends (flow dumps, ONF bundles, flow-mods, barriers), applies bundles atomically on COMMIT and
flow-mods as they come, and answers as OVS does: os-ken builds and serializes each answer, and
ryu_dove's own parser (ryu_dove.openflow.replies) reads it back, so every test that runs the
reconciler also checks that parser against os-ken's bytes.

Requests are parsed here with struct. Packet
processing is tests/fakes/br_int.py's job; this one only keeps the flow table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_common, ofproto_protocol, ofproto_v1_3

from ryu_dove.events import MessageKind
from ryu_dove.openflow import replies
from tests.fakes import switch_messages

OFPT_EXPERIMENTER, OFPT_FLOW_MOD, OFPT_MULTIPART_REQUEST, OFPT_BARRIER_REQUEST = 4, 14, 18, 20
OFPT_METER_MOD = 29
HEADER = struct.Struct("!BBHI")


def _match_bytes(flow_mod: bytes) -> bytes:
    length, = struct.unpack_from("!H", flow_mod, 50)  # ofp_match.length, after 48 fixed bytes
    return flow_mod[48:48 + length]


@dataclass(frozen=True)
class FlowModSeen:
    """The fields of a flow-mod the tests look at, read from its bytes."""

    command: int
    cookie: int
    table_id: int
    priority: int
    raw: bytes

    def same_match(self, other: FlowModSeen) -> bool:
        """Same table, priority and match (the match is the bytes after the fixed part)."""
        return ((self.table_id, self.priority) == (other.table_id, other.priority)
                and _match_bytes(self.raw) == _match_bytes(other.raw))

    @classmethod
    def parse(cls, buf: bytes) -> FlowModSeen:
        version, msg_type, length, _xid = HEADER.unpack_from(buf)
        assert (version, msg_type, length) == (4, 14, len(buf)), "not a whole OF1.3 flow-mod"
        cookie, = struct.unpack_from("!Q", buf, 8)
        table_id, command = struct.unpack_from("!BB", buf, 24)
        priority, = struct.unpack_from("!H", buf, 30)
        return cls(command, cookie, table_id, priority, bytes(buf))


@dataclass
class FakeChannel:
    dpid: int = 1
    table: dict[int, FlowModSeen] = field(default_factory=dict)  # cookie -> its flow-mod
    sent: list[tuple[str, Any]] = field(default_factory=list)  # what the controller sent
    replies: list[tuple[MessageKind, Any]] = field(default_factory=list)  # answers to deliver
    refuse_cookies: set[int] = field(default_factory=set)  # adds that OVS will reject
    identity: str | None = None  # as a TLS connection's certificate would name it
    meters: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (pktps, burst)
    refuse_meters: bool = False  # a switch that takes no meter (OFPMMFC_OUT_OF_METERS)

    def __post_init__(self) -> None:
        self.dp = ofproto_protocol.ProtocolDesc(version=ofproto_v1_3.OFP_VERSION)
        self.dp.id = self.dpid
        self.dp.send = self.receive_bytes  # what os-ken's Datapath.send takes: raw buffers
        self.dp.close = self.close
        self.dp.identity = self.identity  # the name on its certificate; None: plain TCP
        self.closed: str | None = None  # why the controller closed this connection
        self._open: dict[int, list[FlowModSeen]] = {}

    @property
    def ofp(self) -> Any:
        return self.dp.ofproto

    @property
    def parser(self) -> Any:
        return self.dp.ofproto_parser

    def receive_bytes(self, buf: bytes) -> bool:
        while buf:
            _version, msg_type, length, xid = HEADER.unpack_from(buf)
            self._receive(msg_type, xid, bytes(buf[:length]))
            buf = buf[length:]
        return True

    def _receive(self, msg_type: int, xid: int, msg: bytes) -> None:
        if msg_type == OFPT_MULTIPART_REQUEST:
            self.sent.append(("dump", xid))
            self._answer_dump(xid)
            return
        if msg_type == OFPT_FLOW_MOD:  # unbundled: applied as it comes, as OVS does
            mod = FlowModSeen.parse(msg)
            self.sent.append(("flow_mod", mod))
            if not self._refused(mod, xid):
                self._apply(mod)
            return
        if msg_type == OFPT_METER_MOD:
            self._meter_mod(msg, xid)
            return
        if msg_type == ofproto_v1_3.OFPT_PACKET_OUT:  # kept as (ports, frame)
            in_port, actions_len = struct.unpack_from("!IH", msg, 12)
            assert in_port == ofproto_v1_3.OFPP_CONTROLLER
            ports = [struct.unpack_from("!I", msg, 24 + i + 4)[0]
                     for i in range(0, actions_len, 16)]
            self.sent.append(("packet_out", (tuple(ports), bytes(msg[24 + actions_len:]))))
            return
        if msg_type == OFPT_BARRIER_REQUEST:
            self.sent.append(("barrier", xid))
            self._reply(self.parser.OFPBarrierReply(self.dp), xid)
            return
        assert msg_type == OFPT_EXPERIMENTER, f"unexpected message type {msg_type}"
        experimenter, exp_type, bundle_id = struct.unpack_from("!III", msg, 8)
        assert experimenter == ofproto_common.ONF_EXPERIMENTER_ID
        if exp_type == ofproto_v1_3.ONF_ET_BUNDLE_CONTROL:
            ctrl_type, = struct.unpack_from("!H", msg, 20)
            self.sent.append(("bundle_ctrl", ctrl_type))
            self._bundle_ctrl(bundle_id, ctrl_type, xid)
        else:
            inner = msg[24:]
            assert struct.unpack_from("!I", inner, 4)[0] == xid, "inner xid must be the outer"
            mod = FlowModSeen.parse(inner)
            self.sent.append(("bundle_add", mod))
            self._bundle_add(bundle_id, mod, xid)

    def _meter_mod(self, msg: bytes, xid: int) -> None:
        """As OVS: add fails if the meter exists, modify if it does not; no reply on success."""
        command, _flags, meter_id = struct.unpack_from("!HHI", msg, 8)
        pktps, burst = struct.unpack_from("!II", msg, 20)
        self.sent.append(("meter_mod", (command, meter_id)))
        exists = meter_id in self.meters
        code = (self.ofp.OFPMMFC_OUT_OF_METERS if self.refuse_meters
                else self.ofp.OFPMMFC_METER_EXISTS if command == self.ofp.OFPMC_ADD and exists
                else self.ofp.OFPMMFC_UNKNOWN_METER if command == self.ofp.OFPMC_MODIFY
                and not exists else None)
        if code is not None:
            self._reply(self.parser.OFPErrorMsg(self.dp, type_=self.ofp.OFPET_METER_MOD_FAILED,
                                                code=code, data=msg[:64]), xid)
            return
        self.meters[meter_id] = (pktps, burst)

    def _answer_dump(self, xid: int) -> None:
        cookies = list(self.table)
        for i in range(0, max(len(cookies), 1), 100):  # multipart, 100 flows a part
            buf = switch_messages.flow_stats_reply(xid, cookies[i:i + 100],
                                                   more=i + 100 < len(cookies))
            self._take(buf, xid)

    def _bundle_ctrl(self, bundle_id: int, ctrl_type: int, xid: int) -> None:
        if ctrl_type == self.ofp.ONF_BCT_OPEN_REQUEST:
            self._open[bundle_id] = []
        elif ctrl_type == self.ofp.ONF_BCT_COMMIT_REQUEST:
            for mod in self._open.pop(bundle_id):
                self._apply(mod)
            reply = self.parser.ONFBundleCtrlMsg(self.dp, bundle_id,
                                                 self.ofp.ONF_BCT_COMMIT_REPLY, 0, [])
            self._reply(reply, xid)

    def _bundle_add(self, bundle_id: int, mod: FlowModSeen, xid: int) -> None:
        if not self._refused(mod, xid):  # OVS rejects at add time; commit still runs
            self._open[bundle_id].append(mod)

    def _refused(self, mod: FlowModSeen, xid: int) -> bool:
        if mod.command == self.ofp.OFPFC_ADD and mod.cookie in self.refuse_cookies:
            err = self.parser.OFPErrorMsg(self.dp, type_=self.ofp.OFPET_BAD_INSTRUCTION,
                                          code=self.ofp.OFPBIC_BAD_TABLE_ID,
                                          data=mod.raw[:64])
            self._reply(err, xid)
            return True
        return False

    def _apply(self, mod: FlowModSeen) -> None:
        if mod.command == self.ofp.OFPFC_ADD:
            # As OVS: an add replaces a flow with the same table, priority and match.
            for cookie, old in list(self.table.items()):
                if old.same_match(mod):
                    del self.table[cookie]
            self.table[mod.cookie] = mod
        elif mod.command == self.ofp.OFPFC_DELETE:
            self.table.pop(mod.cookie, None)

    def _reply(self, msg: Any, xid: int) -> None:
        """Answer as the switch would: os-ken serializes, ryu_dove's own parser reads back."""
        msg.set_xid(xid)
        msg.serialize()
        self._take(bytes(msg.buf), xid)

    def _take(self, buf: bytes, xid: int) -> None:
        parsed = replies.parse(self.dp, HEADER.unpack_from(buf)[1], xid, buf)
        assert parsed is not None, "the controller would ignore this answer"
        self.replies.append(parsed)

    def close(self, reason: str) -> None:
        """The controller dropped this connection (a newer one from the same switch came)."""
        self.closed = reason

    def take_replies(self) -> list[tuple[MessageKind, Any]]:
        out, self.replies = self.replies, []
        return out

    def flow_mods_sent(self) -> list[FlowModSeen]:
        return [m for kind, m in self.sent if kind in ("bundle_add", "flow_mod")]

    def add_foreign_flow(self, cookie: int = 0x1234) -> None:
        self.table[cookie] = FlowModSeen(self.ofp.OFPFC_ADD, cookie, 0, 1, b"")
