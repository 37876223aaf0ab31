"""A message-level fake OVS for reconciler and engine tests: it takes the os-ken messages
the controller sends, applies bundles atomically on COMMIT, and answers like OVS does.

Packet processing is tests/fakeoftable.py's job; this one only keeps the flow table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_protocol, ofproto_v1_3


@dataclass
class FakeSwitch:
    dpid: int = 1
    table: dict[int, Any] = field(default_factory=dict)  # cookie -> OFPFlowMod
    sent: list[Any] = field(default_factory=list)  # every message from the controller
    replies: list[Any] = field(default_factory=list)  # answers waiting to be delivered
    refuse_cookies: set[int] = field(default_factory=set)  # adds that OVS will reject

    def __post_init__(self) -> None:
        self.dp = ofproto_protocol.ProtocolDesc(version=ofproto_v1_3.OFP_VERSION)
        self.dp.id = self.dpid
        self.dp.send_msg = self.receive
        self._open: dict[int, list[Any]] = {}

    @property
    def ofp(self) -> Any:
        return self.dp.ofproto

    @property
    def parser(self) -> Any:
        return self.dp.ofproto_parser

    def receive(self, msg: Any) -> None:
        msg.serialize()  # what the real send_msg does: catches unencodable messages
        self.sent.append(msg)
        if isinstance(msg, self.parser.OFPFlowStatsRequest):
            self._answer_dump(msg)
        elif isinstance(msg, self.parser.ONFBundleCtrlMsg):
            self._bundle_ctrl(msg)
        elif isinstance(msg, self.parser.ONFBundleAddMsg):
            self._bundle_add(msg)

    def _answer_dump(self, req: Any) -> None:
        stats = [self.parser.OFPFlowStats(cookie=c, table_id=m.table_id, priority=m.priority,
                                          match=m.match, instructions=m.instructions)
                 for c, m in self.table.items()]
        for i in range(0, max(len(stats), 1), 100):  # multipart, 100 flows a part
            more = i + 100 < len(stats)
            reply = self.parser.OFPFlowStatsReply(
                self.dp, flags=self.ofp.OFPMPF_REPLY_MORE if more else 0, body=stats[i:i + 100])
            reply.xid = req.xid
            self.replies.append(("flow_stats", reply))

    def _bundle_ctrl(self, msg: Any) -> None:
        if msg.type == self.ofp.ONF_BCT_OPEN_REQUEST:
            self._open[msg.bundle_id] = []
        elif msg.type == self.ofp.ONF_BCT_COMMIT_REQUEST:
            for m in self._open.pop(msg.bundle_id):
                self._apply(m)
            reply = self.parser.ONFBundleCtrlMsg(self.dp, msg.bundle_id,
                                                 self.ofp.ONF_BCT_COMMIT_REPLY, 0, [])
            reply.xid = msg.xid
            self.replies.append(("bundle", reply))

    def _bundle_add(self, msg: Any) -> None:
        inner = msg.message
        if inner.command == self.ofp.OFPFC_ADD and inner.cookie in self.refuse_cookies:
            err = self.parser.OFPErrorMsg(self.dp, type_=self.ofp.OFPET_BAD_INSTRUCTION,
                                          code=self.ofp.OFPBIC_BAD_TABLE_ID)
            err.xid = msg.xid
            self.replies.append(("error", err))  # OVS rejects at add time; commit still runs
            return
        self._open[msg.bundle_id].append(inner)

    def _apply(self, m: Any) -> None:
        if m.command == self.ofp.OFPFC_ADD:
            self.table[m.cookie] = m
        elif m.command == self.ofp.OFPFC_DELETE:
            self.table.pop(m.cookie, None)

    def take_replies(self) -> list[Any]:
        out, self.replies = self.replies, []
        return out

    def flow_mods_sent(self) -> list[Any]:
        return [m.message for m in self.sent if isinstance(m, self.parser.ONFBundleAddMsg)]

    def add_foreign_flow(self, cookie: int = 0x1234) -> None:
        self.table[cookie] = self.parser.OFPFlowMod(self.dp, cookie=cookie, table_id=0,
                                                    priority=1, match=self.parser.OFPMatch())
