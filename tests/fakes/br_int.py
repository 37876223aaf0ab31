"""A fake OpenFlow 1.3 switch that runs our Flow values on packets.

Tests ask where a packet goes ("is it output on port 3, with which tunnel key, rewritten how?")
instead of reading flow text, so they survive refactors of the compiler and catch what the
switch would actually do. The idea is faucet's clib/fakeoftable.py, applied to
ryu_dove.pipeline.flows.

The fake is stricter than OVS where OVS would be silent or undefined:
- a flow OVS would refuse (unknown field, missing match prerequisite, goto backwards, a write
  to a read-only field, ct or dec_ttl without an IP match, an unknown meter) raises
  InvalidFlow when the switch is built;
- two flows of one table with the same priority and match but different actions (OVS keeps
  only the last one added) raise InvalidFlow;
- a packet matched by two flows of equal priority (which one wins is undefined) raises
  AmbiguousMatch;
- a packet recirculated more than MAX_RECIRCULATIONS times (OVS drops it) raises
  FakeTableError, as does a packet that lacks a header an action needs (a test's mistake).

A packet is a dict of header fields named like match fields; MACs and IPs are strings. The
IPv4 TTL and the IPv6 hop limit are both nw_ttl, as in OVS. Two fields OpenFlow cannot match
ride along for conntrack: icmp_id (an ICMP echo's identifier) and icmp_inner (the header an
ICMP error is about, a packet dict as that packet was sent). in_port and tunnel_id are
arguments; registers, ct_state and ct_zone start at 0 and are not part of the packet.

Beyond lookup and rewrite the switch models:
- conntrack (Ct), per zone (a constant, or the low 16 bits of a register). Connections are keyed
  by their tuple, either direction: addresses, protocol and ports; an ICMP echo by its id; other
  protocols by addresses alone. A packet through ct is +trk and
    +new  when no committed connection has it, or its connection has not been answered yet;
    +est  when its committed connection has seen a packet each way (+est+rpl on every reply,
          the first one included), as Linux conntrack reports it;
    +rel  for an ICMP error whose icmp_inner belongs to a committed connection (+rpl when the
          error travels back toward the connection's originator);
    +inv  for what conntrack cannot track: an ICMP error about no connection, an echo reply
          or other ICMP type that cannot open a connection (neighbour discovery too), and a TCP
          packet without a connection whose tcp_flags, when the packet has them, are not a bare
          SYN (without tcp_flags TCP is tracked like UDP).
  ct(commit) stores the connection of a +new packet; on any other it changes nothing. There
  are no timeouts and no TCP teardown: flush_conntrack() ends connections, as
  `ovs-appctl dpctl/flush-conntrack [zone=N]` does, and dump_conntrack() lists them.
  As in OVS, ct(table=X) forks: a tracked copy of the packet (ct_state and ct_zone set)
  resumes in X once the current copy is done, while the rest of the action list and the goto
  run on the original with the ct fields cleared (untracked). After a ct without table= the
  packet goes on untracked too: only a recirculated copy ever matches a ct_state.
- dec_ttl: at nw_ttl 0 or 1 the flow's remaining actions and its goto do not run ("invalid_ttl"
  in Fate.drops; OVS would also send a packet-in to controllers that ask for invalid_ttl, none
  here); otherwise nw_ttl goes down by one.
- meters: FakeBrInt(flows, meters={meter_id: packets per second}, clock=...) passes at most
  that many packets per second of the injected clock (without one the clock stands at 0)
  and drops the rest (a drop band; "meter:<id>" in Fate.drops). OpenFlow 1.3 runs the meter
  instruction before the actions, so a Meter must come first in a flow's actions.
- controller output: a Delivery to CONTROLLER with the packet as it was at that action (not
  cut to max_len), the reason, and the pipeline fields a packet-in carries (in_port,
  registers, ct_state...) in its metadata.

send() returns a packet's whole Fate; process(), outputs() and the others are views of it.
Each call sends the packet once, so conntrack and meters see it; only trace() is a dry run
that leaves them as they were, so it can explain a failed assertion.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ryu_dove.pipeline.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    IN_PORT,
    Controller,
    Ct,
    DecTtl,
    Flow,
    Meter,
    Move,
    Output,
    SetField,
)
from ryu_dove.pipeline.stages import Stage

Header = dict[str, int | str]
Packet = dict[str, int | str | Header]  # only icmp_inner holds a Header

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
CONTROLLER = 0xFFFFFFFD  # OFPP_CONTROLLER: where Controller() sends a packet
OFPM13_MAX = 0xFFFF0000  # the highest meter id OpenFlow 1.3 allows
MAX_RECIRCULATIONS = 8  # OVS's userspace datapath drops deeper recirculation (MAX_RECIRC_DEPTH)
PACKET_IN_REASONS = frozenset({"no_match", "action", "invalid_ttl"})  # OpenFlow 1.3's

MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha"})
IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
IPV6_FIELDS = frozenset({"ipv6_src", "ipv6_dst"})
REGISTERS = tuple(f"reg{i}" for i in range(16))
CT_FIELDS = ("ct_state", "ct_zone")
PIPELINE_FIELDS = frozenset({"in_port", "tunnel_id", *REGISTERS, *CT_FIELDS})  # not the packet
CARRIED_FIELDS = frozenset({"icmp_id", "icmp_inner"})  # in the packet, not matchable
READ_ONLY = frozenset({"eth_type", "ip_proto", *CT_FIELDS})  # OVS refuses to write these

FIELD_BITS: Mapping[str, int] = {
    **{name: 48 for name in MAC_FIELDS},
    **{name: 32 for name in IPV4_FIELDS},
    **{name: 128 for name in IPV6_FIELDS},
    **{name: 32 for name in REGISTERS},
    "in_port": 32, "tunnel_id": 64, "eth_type": 16, "vlan_vid": 13, "arp_op": 16,
    "ip_proto": 8, "ip_dscp": 6, "nw_ttl": 8, "tcp_src": 16, "tcp_dst": 16, "tcp_flags": 12,
    "udp_src": 16, "udp_dst": 16,
    "icmpv4_type": 8, "icmpv4_code": 8, "icmpv6_type": 8, "icmpv6_code": 8,
    "ct_state": 32, "ct_zone": 16,
}

_IP_TYPES = frozenset({ETH_IPV4, ETH_IPV6})
# OpenFlow 1.3 match prerequisites (spec 7.2.3.8): field prefix -> (field, allowed values).
_PREREQUISITES: tuple[tuple[str, tuple[tuple[str, frozenset[int]], ...]], ...] = (
    ("arp_", (("eth_type", frozenset({ETH_ARP})),)),
    ("ipv4_", (("eth_type", frozenset({ETH_IPV4})),)),
    ("ipv6_", (("eth_type", frozenset({ETH_IPV6})),)),
    ("ip_", (("eth_type", _IP_TYPES),)),
    ("nw_", (("eth_type", _IP_TYPES),)),
    ("tcp_", (("eth_type", _IP_TYPES), ("ip_proto", frozenset({IPPROTO_TCP})))),
    ("udp_", (("eth_type", _IP_TYPES), ("ip_proto", frozenset({IPPROTO_UDP})))),
    ("icmpv4_", (("eth_type", frozenset({ETH_IPV4})), ("ip_proto", frozenset({IPPROTO_ICMP})))),
    ("icmpv6_", (("eth_type", frozenset({ETH_IPV6})),
                 ("ip_proto", frozenset({IPPROTO_ICMPV6})))),
)


class FakeTableError(Exception):
    pass


class InvalidFlow(FakeTableError):
    """A flow a real switch would refuse, or two flows it could not both hold."""


class AmbiguousMatch(FakeTableError):
    """Two flows of equal priority match one packet: the switch may pick either."""


@dataclass(frozen=True)
class Delivery:
    port: int  # CONTROLLER for a packet-in
    packet: Packet  # as rewritten when it was output
    tunnel_id: int
    # in_port, registers, ct_state, ct_zone at that point: what a packet-in's match carries
    metadata: Mapping[str, int] = field(default_factory=dict, compare=False)
    reason: str = ""  # a packet-in's reason ("action"...); empty for a port


@dataclass(frozen=True)
class Fate:
    """All one packet did: the copies delivered, the flows hit, and the copies stopped."""

    deliveries: tuple[Delivery, ...]
    path: tuple[Flow, ...]  # recirculated copies' flows after the original's
    drops: tuple[str, ...]  # "invalid_ttl", "meter:<id>"; a table miss is not listed

    @property
    def punted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.port == CONTROLLER]


@dataclass(frozen=True)
class ConnEntry:
    """A committed connection, in its original direction (as dpctl/dump-conntrack lists it)."""

    zone: int
    ip_proto: int
    src: str
    dst: str
    sport: int  # TCP/UDP port or ICMP echo id; 0 for other protocols
    dport: int  # TCP/UDP port; 0 otherwise
    replied: bool  # a reply has been seen: its packets are +est


# --- field values: strings for people, ints for matching and bit moves -------------------

def encode(name: str, value: int | str) -> int:
    bits = FIELD_BITS.get(name)
    if bits is None:
        raise KeyError(f"the fake table does not know field {name!r}")
    number = _parse(name, value) if isinstance(value, str) else value
    if not 0 <= number < 1 << bits:
        raise ValueError(f"{name}={value!r} does not fit in {bits} bits")
    return number


def decode(name: str, number: int) -> int | str:
    if name in MAC_FIELDS:
        text = f"{number:012x}"
        return ":".join(text[i:i + 2] for i in range(0, 12, 2))
    if name in IPV4_FIELDS:
        return str(ipaddress.IPv4Address(number))
    if name in IPV6_FIELDS:
        return str(ipaddress.IPv6Address(number))
    return number


def _parse(name: str, text: str) -> int:
    if name in MAC_FIELDS:
        return int(text.replace(":", ""), 16)
    if name in IPV4_FIELDS:
        return int(ipaddress.IPv4Address(text))
    if name in IPV6_FIELDS:
        return int(ipaddress.IPv6Address(text))
    raise ValueError(f"{name} takes an integer, not {text!r}")


# --- flows, checked as a switch would on flow-mod ------------------------------------------

@dataclass(frozen=True)
class _Entry:
    """One flow, its match pre-encoded as (field, value, mask)."""

    flow: Flow
    match: tuple[tuple[str, int, int], ...]

    def matches(self, state: Mapping[str, int]) -> bool:
        return all(name in state and state[name] & mask == value & mask
                   for name, value, mask in self.match)


def _entry(f: Flow) -> _Entry:
    fields = []
    for name, spec in f.match:
        if isinstance(spec, tuple):
            value, mask = encode(name, spec[0]), encode(name, spec[1])
        else:
            value, mask = encode(name, spec), (1 << FIELD_BITS[name]) - 1
        fields.append((name, value, mask))
    return _Entry(f, tuple(fields))


def check_openflow(f: Flow) -> None:
    """Refuse what OVS refuses: unknown fields, unmet prerequisites, backwards gotos."""
    try:
        entry = _entry(f)
    except (KeyError, ValueError) as err:
        raise InvalidFlow(f"{err}: {f.describe()}") from err
    exact = {name: value for name, value, mask in entry.match
             if mask == (1 << FIELD_BITS[name]) - 1}
    for name in (*f.match_dict, *_action_fields(f)):
        _check_prerequisites(name, exact, f)
    _check_actions(f, entry, exact)
    if f.goto is not None and f.goto.table <= f.stage.table:
        raise InvalidFlow(f"goto must go to a later table: {f.describe()}")


def _action_fields(f: Flow) -> Iterable[str]:
    """Set-field and move need their fields' prerequisites in the match too (as OVS checks)."""
    for action in f.actions:
        if isinstance(action, SetField):
            yield action.field
        elif isinstance(action, Move):
            yield from (action.src, action.dst)


def _check_actions(f: Flow, entry: _Entry, exact: Mapping[str, int]) -> None:
    meters = [i for i, action in enumerate(f.actions) if isinstance(action, Meter)]
    if meters not in ([], [0]):  # OpenFlow 1.3: one meter instruction, run before the actions
        raise InvalidFlow(f"a flow has one meter, before its other actions: {f.describe()}")
    for action in f.actions:
        problem = _action_problem(action, entry, exact)
        if problem:
            raise InvalidFlow(f"{problem}: {f.describe()}")


def _action_problem(action: object, entry: _Entry, exact: Mapping[str, int]) -> str | None:
    if isinstance(action, SetField):
        try:
            encode(action.field, action.value)
        except ValueError as err:
            return str(err)
        return _read_only(action.field)
    if isinstance(action, Move):
        if action.n_bits > min(FIELD_BITS[action.src], FIELD_BITS[action.dst]):
            return f"{action.n_bits} bits do not fit {action.src}->{action.dst}"
        return _read_only(action.dst)
    if isinstance(action, Ct | DecTtl) and exact.get("eth_type") not in _IP_TYPES:
        return f"{type(action).__name__} needs eth_type=0x800 or 0x86dd in the match"
    if isinstance(action, Ct):
        return _ct_problem(action, entry)
    if isinstance(action, Meter) and not 0 < action.meter_id <= OFPM13_MAX:
        return f"meter id {action.meter_id} is out of range"
    if isinstance(action, Controller) and (action.reason not in PACKET_IN_REASONS
                                           or not 0 <= action.max_len <= 0xFFFF):
        return f"no such packet-in: {action!r}"
    return None


def _read_only(name: str) -> str | None:
    return f"{name} is read-only" if name in READ_ONLY else None


def _ct_problem(ct: Ct, entry: _Entry) -> str | None:
    if isinstance(ct.zone, str):
        if ct.zone not in REGISTERS:
            return f"a ct zone comes from a register, not {ct.zone!r}"
    elif not 0 <= ct.zone <= 0xFFFF:
        return f"ct zone {ct.zone} does not fit in 16 bits"
    inv = any(name == "ct_state" and value & mask & CT_INV for name, value, mask in entry.match)
    if ct.commit and inv:  # OVS refuses this combination as an inconsistent match
        return "ct(commit) of +inv packets"
    return None


def _check_prerequisites(name: str, exact: Mapping[str, int], f: Flow) -> None:
    if name not in FIELD_BITS:
        raise InvalidFlow(f"unknown field {name!r}: {f.describe()}")
    for prefix, needs in _PREREQUISITES:
        if not name.startswith(prefix):
            continue
        for need, allowed in needs:
            if exact.get(need) not in allowed:
                want = " or ".join(hex(v) for v in sorted(allowed))
                raise InvalidFlow(f"{name} needs {need}={want} in the match: {f.describe()}")


def _check_conflicts(flows: Iterable[Flow]) -> None:
    seen: dict[tuple[Stage, int, tuple[object, ...]], Flow] = {}
    for f in flows:
        key = (f.stage, f.priority, f.match)
        other = seen.setdefault(key, f)
        if other != f:
            raise InvalidFlow(f"same match and priority, different actions:\n  "
                              f"{other.describe()}\n  {f.describe()}")


def _check_meters(flows: Iterable[Flow], meters: Mapping[int, int]) -> None:
    for f in flows:
        for action in f.actions:
            if isinstance(action, Meter) and action.meter_id not in meters:
                raise InvalidFlow(f"meter {action.meter_id} does not exist: {f.describe()}")


# --- conntrack ------------------------------------------------------------------------------

_Tuple = tuple[int, int, int, int, int, int]  # eth_type, ip_proto, src, sport, dst, dport
_ECHO = 1 << 16  # stands in the port an echo lacks: a request and its reply reverse each other
_ICMP_TYPE = {ETH_IPV4: "icmpv4_type", ETH_IPV6: "icmpv6_type"}
_ECHO_TYPES = {(ETH_IPV4, IPPROTO_ICMP): (8, 0), (ETH_IPV6, IPPROTO_ICMPV6): (128, 129)}
_ERROR_TYPES = {(ETH_IPV4, IPPROTO_ICMP): frozenset({3, 4, 5, 11, 12}),
                (ETH_IPV6, IPPROTO_ICMPV6): frozenset({1, 2, 3, 4})}


class Conntrack:
    """Committed connections per zone, and the ct_state a packet gets (module docstring)."""

    def __init__(self) -> None:
        self._conns: dict[tuple[int, _Tuple], bool] = {}  # (zone, original) -> reply seen

    def track(self, zone: int, state: Mapping[str, int], carried: Mapping[str, object],
              commit: bool) -> int:
        """The packet's ct_state; commit stores the connection of a +new packet."""
        if _is_icmp_error(state):
            return self._related(zone, _inner_tuple(carried))
        found = _conn_tuple(state, carried)
        if found is None:
            return CT_TRK | CT_INV
        tup, may_open = found
        if (zone, tup) in self._conns:
            return CT_TRK | (CT_EST if self._conns[zone, tup] else CT_NEW)
        back = (zone, _reverse(tup))
        if back in self._conns:
            self._conns[back] = True  # answered: from now on +est both ways
            return CT_TRK | CT_EST | CT_RPL
        if not may_open:
            return CT_TRK | CT_INV
        if commit:
            self._conns[zone, tup] = False
        return CT_TRK | CT_NEW

    def _related(self, zone: int, inner: _Tuple | None) -> int:
        if inner is not None and (zone, inner) in self._conns:
            return CT_TRK | CT_REL | CT_RPL  # about a packet the originator sent: going back
        if inner is not None and (zone, _reverse(inner)) in self._conns:
            return CT_TRK | CT_REL
        return CT_TRK | CT_INV

    def flush(self, zone: int | None = None) -> None:
        self._conns = {key: replied for key, replied in self._conns.items()
                       if zone is not None and key[0] != zone}

    def dump(self, zone: int | None = None) -> list[ConnEntry]:
        return [_conn_entry(z, tup, replied) for (z, tup), replied in self._conns.items()
                if zone is None or z == zone]

    def snapshot(self) -> dict[tuple[int, _Tuple], bool]:
        return dict(self._conns)

    def restore(self, snapshot: Mapping[tuple[int, _Tuple], bool]) -> None:
        self._conns = dict(snapshot)


def _reverse(t: _Tuple) -> _Tuple:
    eth, proto, src, sport, dst, dport = t
    return eth, proto, dst, dport, src, sport


def _conn_tuple(state: Mapping[str, int],
                carried: Mapping[str, object]) -> tuple[_Tuple, bool] | None:
    """The packet's tuple and whether it may open a connection; None if it cannot be tracked."""
    eth, proto, src, dst = _l3(state)
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        l4 = "tcp" if proto == IPPROTO_TCP else "udp"
        sport, dport = _need(state, f"{l4}_src", f"{l4}_dst")
        flags = state.get("tcp_flags")
        opens = flags is None or flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
        return (eth, proto, src, sport, dst, dport), opens
    echo = _ECHO_TYPES.get((eth, proto))
    if echo is None:
        return (eth, proto, src, 0, dst, 0), True  # other protocols: by addresses alone
    (icmp_type,) = _need(state, _ICMP_TYPE[eth])
    ident = carried.get("icmp_id")
    if icmp_type not in echo:
        return None  # errors are handled before; other ICMP cannot open a connection
    if not isinstance(ident, int):
        raise FakeTableError("conntrack needs the icmp_id of an ICMP echo")
    if icmp_type == echo[0]:
        return (eth, proto, src, ident, dst, _ECHO), True
    return (eth, proto, src, _ECHO, dst, ident), False


def _is_icmp_error(state: Mapping[str, int]) -> bool:
    eth = state.get("eth_type", 0)
    errors = _ERROR_TYPES.get((eth, state.get("ip_proto", 0)))
    return errors is not None and state.get(_ICMP_TYPE[eth]) in errors


def _inner_tuple(carried: Mapping[str, object]) -> _Tuple | None:
    """The tuple of the packet an ICMP error is about; None if conntrack could not track it."""
    inner = carried.get("icmp_inner")
    if not isinstance(inner, dict):
        raise FakeTableError("an ICMP error needs icmp_inner, the header it is about")
    found = _conn_tuple(*_header(inner))
    return None if found is None else found[0]


def _l3(state: Mapping[str, int]) -> tuple[int, int, int, int]:
    eth = state.get("eth_type")
    if eth not in _IP_TYPES:
        raise FakeTableError(f"conntrack tracks IP packets, not eth_type={eth}")
    family = "ipv4" if eth == ETH_IPV4 else "ipv6"
    src, dst, proto = _need(state, f"{family}_src", f"{family}_dst", "ip_proto")
    return eth, proto, src, dst


def _need(state: Mapping[str, int], *names: str) -> list[int]:
    missing = [name for name in names if name not in state]
    if missing:
        raise FakeTableError(f"the packet needs {missing} for this action")
    return [state[name] for name in names]


def _conn_entry(zone: int, tup: _Tuple, replied: bool) -> ConnEntry:
    eth, proto, src, sport, dst, dport = tup
    family = "ipv4" if eth == ETH_IPV4 else "ipv6"
    return ConnEntry(zone, proto, str(decode(f"{family}_src", src)),
                     str(decode(f"{family}_dst", dst)), sport, 0 if dport == _ECHO else dport,
                     replied)


# --- meters ---------------------------------------------------------------------------------

class _Meters:
    """Drop bands in packets per second, counted per second of the injected clock."""

    def __init__(self, rates: Mapping[int, int], clock: Callable[[], float]) -> None:
        bad = sorted(m for m, rate in rates.items() if not (0 < m <= OFPM13_MAX and rate > 0))
        if bad:
            raise ValueError(f"meters need an id in 1..{OFPM13_MAX:#x} and a positive rate: "
                             f"{bad}")
        self.rates = dict(rates)
        self._clock = clock
        self._passed: dict[int, tuple[int, int]] = {}  # meter -> (second, packets passed)

    def admit(self, meter_id: int) -> bool:
        second = math.floor(self._clock())
        start, passed = self._passed.get(meter_id, (second, 0))
        if start != second:
            passed = 0
        if passed >= self.rates[meter_id]:
            return False
        self._passed[meter_id] = (second, passed + 1)
        return True

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return dict(self._passed)

    def restore(self, snapshot: Mapping[int, tuple[int, int]]) -> None:
        self._passed = dict(snapshot)


def _still_clock() -> float:
    return 0.0  # without a clock, all packets fall in one second


# --- the switch -----------------------------------------------------------------------------

class FakeBrInt:
    """br-int as the flows describe it; no table-miss flow means drop, as in OVS."""

    def __init__(self, flows: Iterable[Flow], meters: Mapping[int, int] | None = None,
                 clock: Callable[[], float] = _still_clock) -> None:
        self.flows = frozenset(flows)
        for f in self.flows:
            check_openflow(f)
        _check_conflicts(sorted(self.flows, key=lambda f: f.cookie))
        self._meters = _Meters(meters or {}, clock)
        _check_meters(self.flows, self._meters.rates)
        self._conntrack = Conntrack()
        self._tables: dict[Stage, list[_Entry]] = {}
        for f in self.flows:
            self._tables.setdefault(f.stage, []).append(_entry(f))

    def send(self, packet: Mapping[str, int | str | Header], in_port: int,
             tunnel_id: int = 0) -> Fate:
        """Everything the packet does, conntrack and meters included."""
        state, carried = _initial_state(packet, in_port, tunnel_id)
        first = _Copy(min(Stage, key=lambda s: s.table), state, carried)
        return _Run(self._lookup, self._conntrack, self._meters).fate(first)

    def process(self, packet: Mapping[str, int | str | Header], in_port: int,
                tunnel_id: int = 0) -> list[Delivery]:
        return list(self.send(packet, in_port, tunnel_id).deliveries)

    def trace(self, packet: Mapping[str, int | str | Header], in_port: int,
              tunnel_id: int = 0) -> list[Flow]:
        """The flows the packet hit, table by table: for messages when a test fails. A dry
        run: conntrack and meters are left as they were."""
        saved = self._conntrack.snapshot(), self._meters.snapshot()
        try:
            return list(self.send(packet, in_port, tunnel_id).path)
        finally:
            self._conntrack.restore(saved[0])
            self._meters.restore(saved[1])

    def outputs(self, packet: Mapping[str, int | str | Header], in_port: int,
                tunnel_id: int = 0) -> set[int]:
        return {d.port for d in self.process(packet, in_port, tunnel_id)}

    def is_output(self, packet: Mapping[str, int | str | Header], in_port: int, port: int,
                  tunnel_id: int = 0) -> bool:
        return port in self.outputs(packet, in_port, tunnel_id)

    def tunnel_outputs(self, packet: Mapping[str, int | str | Header], in_port: int,
                       tunnel_id: int = 0) -> dict[int, int]:
        """Port -> tunnel key, for the copies sent with a tunnel key set."""
        return {d.port: d.tunnel_id for d in self.process(packet, in_port, tunnel_id)
                if d.tunnel_id != 0}

    def dump_conntrack(self, zone: int | None = None) -> list[ConnEntry]:
        return self._conntrack.dump(zone)

    def flush_conntrack(self, zone: int | None = None) -> None:
        """End the connections of one zone, or all (ovs-appctl dpctl/flush-conntrack)."""
        self._conntrack.flush(zone)

    def _lookup(self, stage: Stage, state: Mapping[str, int]) -> Flow | None:
        hits = [e.flow for e in self._tables.get(stage, ()) if e.matches(state)]
        if not hits:
            return None
        best = max(f.priority for f in hits)
        winners = [f for f in hits if f.priority == best]
        if len(winners) > 1:
            lines = "\n  ".join(sorted(f.describe() for f in winners))
            raise AmbiguousMatch(f"{stage.name}: {len(winners)} flows match:\n  {lines}")
        return winners[0]


@dataclass
class _Copy:
    """One copy of the packet on its way: the original, or one ct(table=) recirculated."""

    stage: Stage
    state: dict[str, int]
    carried: dict[str, int | Header]
    recirculations: int = 0


class _Run:
    """One packet through the tables, then the copies it recirculated, in order."""

    def __init__(self, lookup: Callable[[Stage, Mapping[str, int]], Flow | None],
                 conntrack: Conntrack, meters: _Meters) -> None:
        self._lookup, self._conntrack, self._meters = lookup, conntrack, meters
        self._queue: deque[_Copy] = deque()
        self._deliveries: list[Delivery] = []
        self._path: list[Flow] = []
        self._drops: list[str] = []

    def fate(self, first: _Copy) -> Fate:
        self._queue.append(first)
        while self._queue:
            self._walk(self._queue.popleft())
        return Fate(tuple(self._deliveries), tuple(self._path), tuple(self._drops))

    def _walk(self, copy: _Copy) -> None:
        stage: Stage | None = copy.stage
        while stage is not None:
            hit = self._lookup(stage, copy.state)
            if hit is None:
                return  # table miss: drop
            self._path.append(hit)
            if not self._execute(hit, copy):
                return
            stage = hit.goto

    def _execute(self, hit: Flow, copy: _Copy) -> bool:
        """Run a flow's actions; False when the packet stops there (meter, invalid TTL)."""
        for action in hit.actions:
            if isinstance(action, Meter):
                if not self._meters.admit(action.meter_id):
                    return self._drop(f"meter:{action.meter_id}")
            elif isinstance(action, DecTtl):
                if not _dec_ttl(copy.state):
                    return self._drop("invalid_ttl")
            elif isinstance(action, Ct):
                self._ct(action, copy)
            else:
                _apply(action, copy, self._deliveries)
        return True

    def _drop(self, why: str) -> bool:
        self._drops.append(why)
        return False

    def _ct(self, ct: Ct, copy: _Copy) -> None:
        zone = copy.state[ct.zone] & 0xFFFF if isinstance(ct.zone, str) else ct.zone
        ct_state = self._conntrack.track(zone, copy.state, copy.carried, ct.commit)
        if ct.table is not None:
            if copy.recirculations >= MAX_RECIRCULATIONS:
                raise FakeTableError(f"recirculated more than {MAX_RECIRCULATIONS} times: "
                                     f"a loop through {ct.table.name}?")
            state = {**copy.state, "ct_state": ct_state, "ct_zone": zone}
            self._queue.append(
                _Copy(ct.table, state, dict(copy.carried), copy.recirculations + 1))
        # OVS: the ct fields exist only for the recirculated copy; this one goes on untracked.
        copy.state.update({name: 0 for name in CT_FIELDS})


def _initial_state(packet: Mapping[str, int | str | Header], in_port: int,
                   tunnel_id: int) -> tuple[dict[str, int], dict[str, int | Header]]:
    clash = PIPELINE_FIELDS & packet.keys()
    if clash:
        raise ValueError(f"{sorted(clash)} are not packet fields: pass in_port and tunnel_id "
                         f"as arguments; registers and ct fields start at 0")
    state, carried = _header(packet)
    state.update({name: 0 for name in (*REGISTERS, *CT_FIELDS)})
    state["in_port"] = encode("in_port", in_port)
    state["tunnel_id"] = encode("tunnel_id", tunnel_id)
    return state, carried


def _header(packet: Mapping[str, int | str | Header]
            ) -> tuple[dict[str, int], dict[str, int | Header]]:
    """A packet's matchable fields as ints, and the fields that only ride along."""
    state: dict[str, int] = {}
    carried: dict[str, int | Header] = {}
    for name, value in packet.items():
        inner_ok = name == "icmp_inner" and isinstance(value, dict)
        if inner_ok or name == "icmp_id" and isinstance(value, int) and 0 <= value <= 0xFFFF:
            carried[name] = value
        elif name in CARRIED_FIELDS or isinstance(value, dict):
            raise ValueError(f"bad {name}={value!r}: icmp_inner is a packet dict, icmp_id a "
                             f"16-bit int, every other field an int or a string")
        else:
            state[name] = encode(name, value)
    return state, carried


def _apply(action: object, copy: _Copy, out: list[Delivery]) -> None:
    if isinstance(action, Output):
        _output(action.port, copy, out)
    elif isinstance(action, Controller):
        out.append(_delivery(CONTROLLER, copy, action.reason))
    elif isinstance(action, SetField):
        copy.state[action.field] = encode(action.field, action.value)
    elif isinstance(action, Move):
        _move(action, copy.state)
    else:
        raise TypeError(f"unknown action {action!r}")


def _output(port: int, copy: _Copy, out: list[Delivery]) -> None:
    in_port = copy.state["in_port"]
    if port == in_port:
        return  # OpenFlow: never back out the in_port unless asked with IN_PORT
    out.append(_delivery(in_port if port == IN_PORT else port, copy))


def _delivery(port: int, copy: _Copy, reason: str = "") -> Delivery:
    packet: Packet = {k: decode(k, v) for k, v in copy.state.items()
                      if k not in PIPELINE_FIELDS}
    packet.update(copy.carried)
    metadata = {k: v for k, v in copy.state.items() if k in PIPELINE_FIELDS}
    return Delivery(port, packet, copy.state["tunnel_id"], metadata, reason)


def _move(move: Move, state: dict[str, int]) -> None:
    """Copy the low n_bits of src over the low n_bits of dst (reg_move with offsets 0)."""
    if move.src not in state:
        raise FakeTableError(f"move from {move.src}, which the packet does not have")
    mask = (1 << move.n_bits) - 1
    state[move.dst] = (state.get(move.dst, 0) & ~mask) | (state[move.src] & mask)


def _dec_ttl(state: dict[str, int]) -> bool:
    """Decrement nw_ttl; False (and no change) when it is 0 or 1, as OVS refuses those."""
    (ttl,) = _need(state, "nw_ttl")
    if ttl <= 1:
        return False
    state["nw_ttl"] = ttl - 1
    return True


# --- packets as tests write them -----------------------------------------------------------

def arp(op: int, sha: str, spa: str, tpa: str, tha: str = ZERO_MAC,
        eth_dst: str = BROADCAST_MAC) -> Packet:
    return {"eth_src": sha, "eth_dst": eth_dst, "eth_type": ETH_ARP, "arp_op": op,
            "arp_sha": sha, "arp_spa": spa, "arp_tha": tha, "arp_tpa": tpa}


def arp_request(sha: str, spa: str, tpa: str) -> Packet:
    return arp(ARP_REQUEST, sha, spa, tpa)


def ipv4(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = IPPROTO_ICMP) -> Packet:
    return {"eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IPV4,
            "ipv4_src": src, "ipv4_dst": dst, "ip_proto": proto}


def ipv6(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = IPPROTO_ICMPV6) -> Packet:
    return {"eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IPV6,
            "ipv6_src": src, "ipv6_dst": dst, "ip_proto": proto}


def ip(eth_src: str, eth_dst: str, src: str, dst: str, proto: int, ttl: int = 64) -> Packet:
    """An IPv4 or IPv6 packet (by the form of its addresses) with a TTL, for dec_ttl."""
    build = ipv6 if ":" in src else ipv4
    return {**build(eth_src, eth_dst, src, dst, proto), "nw_ttl": ttl}


def tcp(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int,
        flags: int | None = None, ttl: int = 64) -> Packet:
    """A TCP segment; without flags conntrack tracks it like UDP (no +inv for a lone ACK)."""
    packet = {**ip(eth_src, eth_dst, src, dst, IPPROTO_TCP, ttl), "tcp_src": sport,
              "tcp_dst": dport}
    return packet if flags is None else {**packet, "tcp_flags": flags}


def udp(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int,
        ttl: int = 64) -> Packet:
    return {**ip(eth_src, eth_dst, src, dst, IPPROTO_UDP, ttl), "udp_src": sport,
            "udp_dst": dport}


def icmp_echo(eth_src: str, eth_dst: str, src: str, dst: str, ident: int,
              reply: bool = False, ttl: int = 64) -> Packet:
    v4 = ":" not in src
    request, answer = (8, 0) if v4 else (128, 129)
    packet = ip(eth_src, eth_dst, src, dst, IPPROTO_ICMP if v4 else IPPROTO_ICMPV6, ttl)
    kind = "icmpv4" if v4 else "icmpv6"
    return {**packet, f"{kind}_type": answer if reply else request, f"{kind}_code": 0,
            "icmp_id": ident}


def icmp_error(eth_src: str, eth_dst: str, src: str, dst: str, about: Packet,
               icmp_type: int | None = None, code: int = 0, ttl: int = 64) -> Packet:
    """An ICMP error about a packet (destination unreachable unless told otherwise)."""
    v4 = ":" not in src
    packet = ip(eth_src, eth_dst, src, dst, IPPROTO_ICMP if v4 else IPPROTO_ICMPV6, ttl)
    kind, unreachable = ("icmpv4", 3) if v4 else ("icmpv6", 1)
    inner = {k: v for k, v in about.items() if not isinstance(v, dict)}
    return {**packet, f"{kind}_type": unreachable if icmp_type is None else icmp_type,
            f"{kind}_code": code, "icmp_inner": inner}


_SWAPS = (("eth_src", "eth_dst"), ("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"),
          ("tcp_src", "tcp_dst"), ("udp_src", "udp_dst"))
_ANSWERS = {("icmpv4_type", 8): 0, ("icmpv6_type", 128): 129}


def reply(packet: Packet) -> Packet:
    """The answer to a packet: MACs, addresses and ports swapped, an echo request answered,
    a bare SYN answered with SYN|ACK."""
    out = dict(packet)
    for a, b in _SWAPS:
        if a in packet and b in packet:
            out[a], out[b] = packet[b], packet[a]
    for (name, request), answer in _ANSWERS.items():
        if packet.get(name) == request:
            out[name] = answer
    if packet.get("tcp_flags") == TCP_SYN:
        out["tcp_flags"] = TCP_SYN | TCP_ACK
    return out
