"""Bundles as bytes: each distinct flow is encoded once, and a bundle is sent as one buffer.

A flow's cookie is a hash of its whole content (ryu_dove.pipeline.flows), so the flow-mod
bytes for a cookie are the same on every switch; only the xid differs. The same flow sits on many
hypervisors (ARP answers, every endpoint's unicast flow), so encoding it once and patching
the xid makes convergence cost a copy per switch instead of an encode. Flow-mods are packed
by ryu_dove.openflow.flowmod (~6 us; os-ken's classes take ~75 us); the bundle framing (ONF
extension, OpenFlow 1.3 Extension Pack) is a fixed 24-byte header packed here. Both are
checked byte for byte against os-ken (tests/unit/test_wire.py).
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.ofproto import ofproto_common, ofproto_v1_3

from ryu_dove.openflow import flowmod
from ryu_dove.pipeline.flows import Flow

_HEADER = struct.Struct("!BBHI")  # version, type, length, xid
_BUNDLE_ADD = struct.Struct("!IIIxxH")  # experimenter, exp_type, bundle_id, pad, flags
_XID = struct.Struct("!I")
_INNER_HEAD = struct.Struct("!BBH")  # version, type, length of the wrapped message
_BUNDLE_ADD_HEAD = struct.Struct("!BBHIIIIxxHBBHI")  # the two above, then the inner header
_BUNDLE_CTRL = struct.Struct("!BBHIIIIHH")  # header, experimenter, exp_type, id, type, flags
BUNDLE_OPEN, BUNDLE_COMMIT = ofproto_v1_3.ONF_BCT_OPEN_REQUEST, ofproto_v1_3.ONF_BCT_COMMIT_REQUEST
_MAX_CACHED = 500_000  # distinct flows kept encoded (~200 bytes each)
_adds: dict[int, bytes] = {}
_deletes: dict[int, bytes] = {}


def flow_add_bytes(f: Flow) -> bytes:
    """The OFPFC_ADD flow-mod of a flow, with xid 0 (patched per message)."""
    buf = _adds.get(f.cookie)
    if buf is None:
        buf = flowmod.flow_add(f)
        _remember(_adds, f.cookie, buf)
    return buf


def flow_delete_bytes(cookie: int) -> bytes:
    buf = _deletes.get(cookie)
    if buf is None:
        buf = flowmod.flow_delete(cookie)
        _remember(_deletes, cookie, buf)
    return buf


def bundle_add(bundle_id: int, flags: int, inner: bytes, xid: int) -> bytes:
    """An ONF bundle-add message around an encoded message; both carry the same xid."""
    version, msg_type, length = _INNER_HEAD.unpack_from(inner)
    return _BUNDLE_ADD_HEAD.pack(
        ofproto_v1_3.OFP_VERSION, ofproto_v1_3.OFPT_EXPERIMENTER,
        _HEADER.size + _BUNDLE_ADD.size + length, xid, ofproto_common.ONF_EXPERIMENTER_ID,
        ofproto_v1_3.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, flags, version, msg_type, length,
        xid) + inner[8:]


def with_xid(msg: bytes, xid: int) -> bytes:
    """An encoded message (a cached flow-mod) with its xid set."""
    return msg[:4] + _XID.pack(xid) + msg[8:]


def barrier_request(xid: int) -> bytes:
    return _HEADER.pack(ofproto_v1_3.OFP_VERSION, ofproto_v1_3.OFPT_BARRIER_REQUEST,
                        _HEADER.size, xid)


def bundle_ctrl(bundle_id: int, kind: int, flags: int, xid: int) -> bytes:
    """An ONF bundle-control request (BUNDLE_OPEN, BUNDLE_COMMIT, ...) without properties."""
    return _BUNDLE_CTRL.pack(ofproto_v1_3.OFP_VERSION, ofproto_v1_3.OFPT_EXPERIMENTER,
                             _BUNDLE_CTRL.size, xid, ofproto_common.ONF_EXPERIMENTER_ID,
                             ofproto_v1_3.ONF_ET_BUNDLE_CONTROL, bundle_id, kind, flags)


def encode(msg: Any, xid: int) -> bytes:
    """Any os-ken message, serialized with the given xid."""
    msg.xid = xid
    msg.serialize()
    return bytes(msg.buf)


def _remember(cache: dict[int, bytes], cookie: int, buf: bytes) -> None:
    if len(cache) >= _MAX_CACHED:
        cache.clear()  # a bound, not an LRU: refilling costs one encode per flow
    cache[cookie] = buf
