"""The os-ken reference for ryu_dove.openflow.messages: the same messages built with os-ken's
own classes, which tests/unit/test_wire.py compares with the hand-packed bytes."""

from __future__ import annotations

from typing import Any

from os_ken.ofproto import nicira_ext

from ryu_dove.pipeline.flows import (
    Action,
    Controller,
    Ct,
    DecTtl,
    Flow,
    Meter,
    Move,
    Output,
    SetField,
)

ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF


def flow_add(dp: Any, f: Flow) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    instructions = [parser.OFPInstructionMeter(a.meter_id) for a in f.actions
                    if isinstance(a, Meter)]
    actions = [_action(parser, a) for a in f.actions if not isinstance(a, Meter)]
    if actions:
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    if f.goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(f.goto.table))
    return parser.OFPFlowMod(dp, cookie=f.cookie, table_id=f.stage.table, priority=f.priority,
                             command=ofp.OFPFC_ADD, match=parser.OFPMatch(**f.match_dict),
                             instructions=instructions, idle_timeout=f.idle_timeout,
                             flags=ofp.OFPFF_SEND_FLOW_REM if f.idle_timeout else 0)


def flow_delete(dp: Any, cookie: int) -> Any:
    """Delete the flow with exactly this cookie, in whatever table it is."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPFlowMod(dp, cookie=cookie, cookie_mask=ALL_COOKIE_BITS,
                             table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch())


def flow_dump(dp: Any) -> Any:
    """Ask for every flow of the switch; ours are told apart by cookie afterwards."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                      0, 0, parser.OFPMatch())


def bundle_ctrl(dp: Any, bundle_id: int, kind: str) -> Any:
    """kind: OPEN, COMMIT or DISCARD; atomic and ordered, as the reconciler relies on both."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    return parser.ONFBundleCtrlMsg(dp, bundle_id, getattr(ofp, f"ONF_BCT_{kind}_REQUEST"),
                                   flags, [])


def bundle_add(dp: Any, bundle_id: int, msg: Any) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.ONFBundleAddMsg(dp, bundle_id, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED,
                                  msg, [])


def _action(parser: Any, a: Action) -> Any:
    if isinstance(a, Output):
        return parser.OFPActionOutput(a.port)
    if isinstance(a, SetField):
        return parser.OFPActionSetField(**{a.field: a.value})
    if isinstance(a, Move):
        return parser.NXActionRegMove(src_field=a.src, dst_field=a.dst, n_bits=a.n_bits)
    if isinstance(a, Ct):
        register = isinstance(a.zone, str)
        nested = [] if a.mark is None else [parser.OFPActionSetField(ct_mark=a.mark)]
        return parser.NXActionCT(flags=1 if a.commit else 0,
                                 zone_src=a.zone if register else "",
                                 zone_ofs_nbits=nicira_ext.ofs_nbits(0, 15) if register else a.zone,
                                 recirc_table=0xFF if a.table is None else a.table.table,
                                 alg=0, actions=nested)
    if isinstance(a, DecTtl):
        return parser.OFPActionDecNwTtl()
    if isinstance(a, Controller):
        if a.reason == "action":
            return parser.OFPActionOutput(0xFFFFFFFD, a.max_len)
        reasons = {"no_match": 0, "action": 1, "invalid_ttl": 2}
        return parser.NXActionController(max_len=a.max_len, controller_id=0,
                                         reason=reasons[a.reason])
    raise TypeError(f"unknown action {a!r}")




def hello_failed(dp: Any, text: str) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPErrorMsg(dp, ofp.OFPET_HELLO_FAILED, ofp.OFPHFC_INCOMPATIBLE,
                              text.encode())


def features_request(dp: Any) -> Any:
    return dp.ofproto_parser.OFPFeaturesRequest(dp)


def echo_request(dp: Any, data: bytes = b"") -> Any:
    return dp.ofproto_parser.OFPEchoRequest(dp, data)


def echo_reply(dp: Any, data: bytes = b"") -> Any:
    return dp.ofproto_parser.OFPEchoReply(dp, data)


def barrier_request(dp: Any) -> Any:
    return dp.ofproto_parser.OFPBarrierRequest(dp)
