"""Every OpenFlow 1.3 message the controller sends, packed with struct: flow-mods, bundles,
barrier, the handshake (HELLO, FEATURES_REQUEST, HELLO_FAILED), echo, and the flow dump.

Why by hand: os-ken's message classes are an order of magnitude slower at building and
serializing a flow-mod (generic field tables, address parsing through several layers;
figures in docs/benchmarks.md). The controller encodes every
distinct flow once (its cookie is a hash of its whole content, ryu_dove.pipeline.flows, so the
bytes for a cookie are the same on every switch; only the xid differs), but at a thousand
hypervisors that is still hundreds of thousands of flows, so the few match fields and actions
the pipeline uses are packed directly (conntrack, dec_ttl, meters and packets to the
controller included, for routing, stateful rules and learning). A field or action this
module does not know raises EncodeError. The bytes are identical to os-ken's, field order
included (and OVS's `ovs-ofctl ofp-print` reads them back as meant):
tests/unit/test_wire.py checks every flow the compiler can produce, and every other message
here, against os-ken's classes (tests/fakes/osken_reference.py). os-ken still parses what
switches send (ryu_dove.openflow.connection).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from functools import lru_cache

from os_ken.ofproto import ofproto_common, ofproto_v1_3

from ryu_dove.pipeline.flows import (
    Action,
    Controller,
    Ct,
    DecTtl,
    Flow,
    MatchValue,
    Meter,
    Move,
    Output,
    SetField,
)

OFP = ofproto_v1_3

OFP_VERSION = OFP.OFP_VERSION
OFPT_FLOW_MOD = 14
OFPFF_SEND_FLOW_REM = 1
OFPFC_ADD, OFPFC_DELETE = 0, 3
OFPTT_ALL = 0xFF
OFPP_ANY, OFPG_ANY = 0xFFFFFFFF, 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF
OFP_DEFAULT_PRIORITY = 0x8000  # os-ken's default; a non-strict delete ignores it
OFPCML_MAX = 0xFFE5
OFPIT_GOTO_TABLE, OFPIT_APPLY_ACTIONS, OFPIT_METER = 1, 4, 6
OFPAT_OUTPUT, OFPAT_DEC_NW_TTL, OFPAT_SET_FIELD, OFPAT_EXPERIMENTER = 0, 24, 25, 0xFFFF
OFPP_CONTROLLER = 0xFFFFFFFD
NX_VENDOR_ID, NXAST_REG_MOVE, NXAST_CONTROLLER, NXAST_CT = 0x00002320, 6, 20, 35
NXAST_CONTROLLER2 = 37
NXAC2PT_MAX_LEN, NXAC2PT_REASON, NXAC2PT_METER_ID = 0, 2, 5  # its properties
OFPT_METER_MOD = 29
OFPMC_ADD, OFPMC_MODIFY = 0, 1
OFPMF_PKTPS, OFPMF_BURST = 0x2, 0x4
OFPMBT_DROP = 1
OFPM_MAX = 0xFFFF0000  # above are the virtual meters
OFPM_CONTROLLER = 0xFFFFFFFE  # the bridge's meter for packet-ins without a meter of their own
NX_CT_F_COMMIT, NX_CT_RECIRC_NONE = 1, 0xFF
PACKET_IN_REASONS = {"no_match": 0, "action": 1, "invalid_ttl": 2}  # OFPR_*
OFPMT_OXM = 1
OXM_OPENFLOW_BASIC, NXM_1 = 0x8000, 0x0001
ERICSSON_OXM = 0x1000  # OVS's class for the ND reserved bits and option type (ovs-fields(7))

_HEADER = struct.Struct("!BBHI")  # version, type, length, xid
_FLOW_STATS_REQUEST = struct.Struct("!HH4xBxxxIIxxxxQQ")  # multipart + ofp_flow_stats_request
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")  # header + ofp_flow_mod up to the match
_ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF

# name -> (oxm class, field number, value bytes, kind)
_FIELDS: dict[str, tuple[int, int, int, str]] = {
    "in_port": (OXM_OPENFLOW_BASIC, 0, 4, "int"),
    "eth_dst": (OXM_OPENFLOW_BASIC, 3, 6, "mac"),
    "eth_src": (OXM_OPENFLOW_BASIC, 4, 6, "mac"),
    "eth_type": (OXM_OPENFLOW_BASIC, 5, 2, "int"),
    "ip_proto": (OXM_OPENFLOW_BASIC, 10, 1, "int"),
    "ipv4_src": (OXM_OPENFLOW_BASIC, 11, 4, "ip"),
    "ipv4_dst": (OXM_OPENFLOW_BASIC, 12, 4, "ip"),
    "tcp_src": (OXM_OPENFLOW_BASIC, 13, 2, "int"),
    "tcp_dst": (OXM_OPENFLOW_BASIC, 14, 2, "int"),
    "udp_src": (OXM_OPENFLOW_BASIC, 15, 2, "int"),
    "udp_dst": (OXM_OPENFLOW_BASIC, 16, 2, "int"),
    "icmpv4_type": (OXM_OPENFLOW_BASIC, 19, 1, "int"),
    "icmpv4_code": (OXM_OPENFLOW_BASIC, 20, 1, "int"),
    "arp_op": (OXM_OPENFLOW_BASIC, 21, 2, "int"),
    "arp_spa": (OXM_OPENFLOW_BASIC, 22, 4, "ip"),
    "arp_tpa": (OXM_OPENFLOW_BASIC, 23, 4, "ip"),
    "arp_sha": (OXM_OPENFLOW_BASIC, 24, 6, "mac"),
    "arp_tha": (OXM_OPENFLOW_BASIC, 25, 6, "mac"),
    "ipv6_src": (OXM_OPENFLOW_BASIC, 26, 16, "ip"),
    "ipv6_dst": (OXM_OPENFLOW_BASIC, 27, 16, "ip"),
    "icmpv6_type": (OXM_OPENFLOW_BASIC, 29, 1, "int"),
    "icmpv6_code": (OXM_OPENFLOW_BASIC, 30, 1, "int"),
    "ipv6_nd_target": (OXM_OPENFLOW_BASIC, 31, 16, "ip"),
    "ipv6_nd_sll": (OXM_OPENFLOW_BASIC, 32, 6, "mac"),
    "ipv6_nd_tll": (OXM_OPENFLOW_BASIC, 33, 6, "mac"),
    "tunnel_id": (OXM_OPENFLOW_BASIC, 38, 8, "int"),
    **{f"reg{i}": (NXM_1, i, 4, "int") for i in range(8)},
    # conntrack (Nicira extensions, as OVS and os-ken number them)
    "ct_state": (NXM_1, 105, 4, "int"),
    "ct_zone": (NXM_1, 106, 2, "int"),
    "ct_mark": (NXM_1, 107, 4, "int"),
    # an ND message's flags word (R, S, O for an advertisement) and its first option's type
    "nd_reserved": (ERICSSON_OXM, 1, 4, "int"),
    "nd_options_type": (ERICSSON_OXM, 2, 1, "int"),
}


class EncodeError(ValueError):
    """A flow uses a field or action this encoder does not know."""


def flow_add(f: Flow, xid: int = 0) -> bytes:
    """The OFPFC_ADD flow-mod of a flow."""
    match = _match(f.match)
    body = b"".join((match, *_instructions(f)))
    # A flow that idles out is reported (OFPFF_SEND_FLOW_REM): the switch's use of it is
    # news to the controller (a learned address unused for that long is retired).
    flags = OFPFF_SEND_FLOW_REM if f.idle_timeout else 0
    head = _FLOW_MOD.pack(OFP_VERSION, OFPT_FLOW_MOD, _FLOW_MOD.size + len(body), xid,
                          f.cookie, 0, f.stage.table, OFPFC_ADD, f.idle_timeout, 0,
                          f.priority, OFP_NO_BUFFER, 0, 0, flags)
    return head + body


def flow_delete(cookie: int, xid: int = 0) -> bytes:
    """Delete the flow with exactly this cookie, in whatever table it is."""
    body = _match(())
    return _FLOW_MOD.pack(OFP_VERSION, OFPT_FLOW_MOD, _FLOW_MOD.size + len(body), xid, cookie,
                          _ALL_COOKIE_BITS, OFPTT_ALL, OFPFC_DELETE, 0, 0, OFP_DEFAULT_PRIORITY,
                          OFP_NO_BUFFER,
                          OFPP_ANY, OFPG_ANY, 0) + body


def _match(fields: Iterable[tuple[str, MatchValue]]) -> bytes:
    # os-ken orders fields by OXM type (class, then field): the registers come first.
    tlvs = sorted((_field(name)[:2], _oxm(name, value)) for name, value in fields)
    oxms = b"".join(t for _, t in tlvs)
    length = 4 + len(oxms)
    return struct.pack("!HH", OFPMT_OXM, length) + oxms + bytes(-length % 8)


def _field(name: str) -> tuple[int, int, int, str]:
    try:
        return _FIELDS[name]
    except KeyError:
        raise EncodeError(f"no encoding for match field {name!r}") from None


@lru_cache(maxsize=1 << 16)
def _oxm(name: str, value: MatchValue) -> bytes:
    """One OXM TLV (memoised: VNIs, ports, gateway addresses and MACs recur in many flows)."""
    oxm_class, number, size, kind = _field(name)
    if isinstance(value, tuple):
        data = _value(kind, size, value[0]) + _value(kind, size, value[1])
        return struct.pack("!HBB", oxm_class, number << 1 | 1, 2 * size) + data
    return struct.pack("!HBB", oxm_class, number << 1, size) + _value(kind, size, value)


def _value(kind: str, size: int, value: int | str) -> bytes:
    if kind == "mac":
        return bytes.fromhex(str(value).replace(":", ""))
    if kind == "ip":
        return ipaddress.ip_address(value).packed
    return int(value).to_bytes(size, "big")


def _header(name: str) -> bytes:
    oxm_class, number, size, _ = _field(name)
    return struct.pack("!HBB", oxm_class, number << 1, size)


def _instructions(f: Flow) -> Iterable[bytes]:
    """A Meter action is the meter instruction, which OpenFlow 1.3 runs first whatever its
    place; the other actions are applied in their order."""
    meters = [a for a in f.actions if isinstance(a, Meter)]
    if len(meters) > 1:
        raise EncodeError(f"a flow passes through one meter at most: {f.describe()}")
    for meter in meters:
        yield struct.pack("!HHI", OFPIT_METER, 8, meter.meter_id)
    actions = b"".join(_action(a) for a in f.actions if not isinstance(a, Meter))
    if actions:
        yield struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions
    if f.goto is not None:
        yield struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, f.goto.table)


def _action(a: Action) -> bytes:
    if isinstance(a, Output):
        return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, a.port, OFPCML_MAX)
    if isinstance(a, SetField):
        oxm = _oxm(a.field, a.value)
        length = 4 + len(oxm)
        return struct.pack("!HH", OFPAT_SET_FIELD, length + -length % 8) + oxm + \
            bytes(-length % 8)
    if isinstance(a, Move):
        return struct.pack("!HHIHHHH", OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, NXAST_REG_MOVE,
                           a.n_bits, 0, 0) + _header(a.src) + _header(a.dst)
    if isinstance(a, Ct):
        return _ct(a)
    if isinstance(a, DecTtl):
        return struct.pack("!HH4x", OFPAT_DEC_NW_TTL, 8)
    if isinstance(a, Controller):
        return _controller(a)
    raise EncodeError(f"no encoding for action {a!r}")


def _ct(a: Ct) -> bytes:
    """Nicira ct: flags, the zone (a register's low 16 bits, or a constant), the table to
    recirculate to, then nested actions (setting ct_mark on commit)."""
    if isinstance(a.zone, str):
        zone_src, zone = struct.unpack("!I", _header(a.zone))[0], 15  # ofs 0, 16 bits
    else:
        zone_src, zone = 0, a.zone
    nested = b"" if a.mark is None else _action(SetField("ct_mark", a.mark))
    table = NX_CT_RECIRC_NONE if a.table is None else a.table.table
    flags = NX_CT_F_COMMIT if a.commit else 0
    return struct.pack("!HHIHHIHB3xH", OFPAT_EXPERIMENTER, 24 + len(nested), NX_VENDOR_ID,
                       NXAST_CT, flags, zone_src, zone, table, 0) + nested


def _controller(a: Controller) -> bytes:
    """Output to the controller; with a reason other than "action", Nicira's controller
    action, the only one that carries a reason; with a meter, Nicira's controller2 (OVS
    meters only the copy it sends; os-ken cannot encode that property)."""
    reason = PACKET_IN_REASONS.get(a.reason)
    if reason is None:
        raise EncodeError(f"no packet-in reason {a.reason!r} (known: "
                          f"{', '.join(PACKET_IN_REASONS)})")
    if not 0 <= a.meter_id <= OFPM_MAX:
        raise EncodeError(f"meter id {a.meter_id} is out of range")
    if a.meter_id:
        return _controller2(a.max_len, reason, a.meter_id)
    if a.reason == "action":
        return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, OFPP_CONTROLLER, a.max_len)
    return struct.pack("!HHIHHHBx", OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, NXAST_CONTROLLER,
                       a.max_len, 0, reason)


def _controller2(max_len: int, reason: int, meter_id: int) -> bytes:
    """NXAST_CONTROLLER2: a 16-byte header, then properties (type, length, value, padded to
    8 bytes; the lengths as OVS writes them); OVS's defaults (all of the packet, reason
    action) left out."""
    props = b""
    if max_len != 0xFFFF:
        props += struct.pack("!HHH2x", NXAC2PT_MAX_LEN, 8, max_len)  # as OVS writes it
    if reason != PACKET_IN_REASONS["action"]:
        props += struct.pack("!HHB3x", NXAC2PT_REASON, 5, reason)
    props += struct.pack("!HHI", NXAC2PT_METER_ID, 8, meter_id)
    return struct.pack("!HHIH6x", OFPAT_EXPERIMENTER, 16 + len(props), NX_VENDOR_ID,
                       NXAST_CONTROLLER2) + props


def meter_mod(meter_id: int, pktps: int, burst: int, command: int = OFPMC_ADD,
              xid: int = 0) -> bytes:
    """A meter of `pktps` packets per second (bursts of `burst`) with one drop band: the
    kind that caps what a switch punts to the controller."""
    if not 0 < meter_id <= OFPM_MAX and meter_id != OFPM_CONTROLLER:
        raise EncodeError(f"meter id {meter_id} is out of range")
    band = struct.pack("!HHII4x", OFPMBT_DROP, 16, pktps, burst)
    length = 16 + len(band)
    return struct.pack("!BBHIHHI", OFP_VERSION, OFPT_METER_MOD, length, xid, command,
                       OFPMF_PKTPS | OFPMF_BURST, meter_id) + band


_BUNDLE_ADD = struct.Struct("!IIIxxH")  # experimenter, exp_type, bundle_id, pad, flags
_XID = struct.Struct("!I")
_INNER_HEAD = struct.Struct("!BBH")  # version, type, length of the wrapped message
_BUNDLE_ADD_HEAD = struct.Struct("!BBHIIIIxxHBBHI")  # the two above, then the inner header
_BUNDLE_CTRL = struct.Struct("!BBHIIIIHH")  # header, experimenter, exp_type, id, type, flags
BUNDLE_OPEN, BUNDLE_COMMIT = OFP.ONF_BCT_OPEN_REQUEST, OFP.ONF_BCT_COMMIT_REQUEST
_MAX_CACHED = 500_000  # distinct flows kept encoded (~200 bytes each)
_adds: dict[int, bytes] = {}
_deletes: dict[int, bytes] = {}


# --- flow-mods, encoded once per distinct flow -------------------------------------------

def flow_add_bytes(f: Flow) -> bytes:
    """The OFPFC_ADD flow-mod of a flow, with xid 0 (patched per message)."""
    buf = _adds.get(f.cookie)
    if buf is None:
        buf = flow_add(f)
        _remember(_adds, f.cookie, buf)
    return buf


def flow_delete_bytes(cookie: int) -> bytes:
    buf = _deletes.get(cookie)
    if buf is None:
        buf = flow_delete(cookie)
        _remember(_deletes, cookie, buf)
    return buf


def bundle_add(bundle_id: int, flags: int, inner: bytes, xid: int) -> bytes:
    """An ONF bundle-add message around an encoded message; both carry the same xid."""
    version, msg_type, length = _INNER_HEAD.unpack_from(inner)
    return _BUNDLE_ADD_HEAD.pack(
        OFP.OFP_VERSION, OFP.OFPT_EXPERIMENTER,
        _HEADER.size + _BUNDLE_ADD.size + length, xid, ofproto_common.ONF_EXPERIMENTER_ID,
        OFP.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, flags, version, msg_type, length,
        xid) + inner[8:]


def with_xid(msg: bytes, xid: int) -> bytes:
    """An encoded message (a cached flow-mod) with its xid set."""
    return msg[:4] + _XID.pack(xid) + msg[8:]


def barrier_request(xid: int) -> bytes:
    return _HEADER.pack(OFP.OFP_VERSION, OFP.OFPT_BARRIER_REQUEST,
                        _HEADER.size, xid)


def bundle_ctrl(bundle_id: int, kind: int, flags: int, xid: int) -> bytes:
    """An ONF bundle-control request (BUNDLE_OPEN, BUNDLE_COMMIT, ...) without properties."""
    return _BUNDLE_CTRL.pack(OFP.OFP_VERSION, OFP.OFPT_EXPERIMENTER,
                             _BUNDLE_CTRL.size, xid, ofproto_common.ONF_EXPERIMENTER_ID,
                             OFP.ONF_ET_BUNDLE_CONTROL, bundle_id, kind, flags)


def _remember(cache: dict[int, bytes], cookie: int, buf: bytes) -> None:
    if len(cache) >= _MAX_CACHED:
        cache.clear()  # a bound, not an LRU: refilling costs one encode per flow
    cache[cookie] = buf


# --- the handshake, liveness and the flow dump ---------------------------------------------

def hello() -> bytes:
    """HELLO with a version bitmap that offers OpenFlow 1.3 only."""
    return struct.pack("!BBHIHHI", OFP_VERSION, OFP.OFPT_HELLO, 16, 0,
                       OFP.OFPHET_VERSIONBITMAP, 8, 1 << OFP_VERSION)


def hello_failed(text: str, xid: int = 0) -> bytes:
    """The error a switch that cannot speak 1.3 gets, with the reason as text."""
    body = struct.pack("!HH", OFP.OFPET_HELLO_FAILED, OFP.OFPHFC_INCOMPATIBLE) + text.encode()
    return _HEADER.pack(OFP_VERSION, OFP.OFPT_ERROR, _HEADER.size + len(body), xid) + body


def features_request(xid: int) -> bytes:
    return _HEADER.pack(OFP_VERSION, OFP.OFPT_FEATURES_REQUEST, _HEADER.size, xid)


def echo_request(xid: int = 0) -> bytes:
    return _HEADER.pack(OFP_VERSION, OFP.OFPT_ECHO_REQUEST, _HEADER.size, xid)


def echo_reply(request: bytes) -> bytes:
    """The reply to an echo request: its xid and data sent back."""
    _, _, length, xid = _HEADER.unpack_from(request)
    return _HEADER.pack(OFP_VERSION, OFP.OFPT_ECHO_REPLY, length, xid) + request[8:length]


def flow_stats_request(xid: int, table_id: int = OFPTT_ALL) -> bytes:
    """Ask for every flow of every table (or of one); ours are told apart by cookie
    afterwards."""
    body = _FLOW_STATS_REQUEST.pack(OFP.OFPMP_FLOW, 0, table_id, OFPP_ANY, OFPG_ANY, 0, 0)
    body += _match(())
    return _HEADER.pack(OFP_VERSION, OFP.OFPT_MULTIPART_REQUEST,
                        _HEADER.size + len(body), xid) + body


# --- packets the controller sends ----------------------------------------------------------

_PACKET_OUT = struct.Struct("!BBHIIIH6x")  # header, buffer id, in_port, actions length


def packet_out(data: bytes, ports: Iterable[int], xid: int = 0) -> bytes:
    """Send `data` out of these ports as it is (from the controller, past every table)."""
    actions = b"".join(_action(Output(port)) for port in ports)
    size = _PACKET_OUT.size + len(actions) + len(data)
    return _PACKET_OUT.pack(OFP_VERSION, OFP.OFPT_PACKET_OUT, size, xid, OFP_NO_BUFFER,
                            OFPP_CONTROLLER, len(actions)) + actions + data
