"""The fake switch's conntrack (tests/fakes/br_int.py runs Ct actions through it).

Here, apart from the switch, because connection tracking is a model of its own: the committed
connections per zone, the ct_state a packet gets, commit, flush and dump. How ct(table=X)
recirculates a packet is the switch's part (br_int.py).

Conntrack (Ct) works per zone (a constant, or the low 16 bits of a register). Connections are
keyed by their tuple, either direction: addresses, protocol and ports; an ICMP echo by its id;
other protocols by addresses alone. A packet through ct is +trk and
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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ryu_dove.pipeline.flows import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK
from tests.fakes.packets import (
    ETH_IPV4,
    ETH_IPV6,
    IP_TYPES,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
    FakeTableError,
    decode,
    need,
    split_header,
)

_Tuple = tuple[int, int, int, int, int, int]  # eth_type, ip_proto, src, sport, dst, dport
_ECHO = 1 << 16  # stands in the port an echo lacks: a request and its reply reverse each other
_ICMP_TYPE = {ETH_IPV4: "icmpv4_type", ETH_IPV6: "icmpv6_type"}
_ECHO_TYPES = {(ETH_IPV4, IPPROTO_ICMP): (8, 0), (ETH_IPV6, IPPROTO_ICMPV6): (128, 129)}
_ERROR_TYPES = {(ETH_IPV4, IPPROTO_ICMP): frozenset({3, 4, 5, 11, 12}),
                (ETH_IPV6, IPPROTO_ICMPV6): frozenset({1, 2, 3, 4})}


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


class Conntrack:
    """Committed connections per zone, and the ct_state a packet gets (module docstring)."""

    def __init__(self) -> None:
        self._conns: dict[tuple[int, _Tuple], bool] = {}  # (zone, original) -> reply seen
        self._marks: dict[tuple[int, _Tuple], int] = {}  # ct_mark, when one was set

    def track(self, zone: int, state: Mapping[str, int], carried: Mapping[str, object],
              commit: bool, mark: int | None = None) -> tuple[int, int]:
        """The packet's ct_state and its connection's ct_mark; commit stores the connection
        of a +new packet and, with `mark`, sets its ct_mark (on any committed connection)."""
        if _is_icmp_error(state):
            return self._related(zone, _inner_tuple(carried))
        found = _conn_tuple(state, carried)
        if found is None:
            return CT_TRK | CT_INV, 0
        tup, may_open = found
        for key, ct_state in (((zone, tup), CT_EST if self._conns.get((zone, tup)) else CT_NEW),
                              ((zone, _reverse(tup)), CT_EST | CT_RPL)):
            if key in self._conns:
                if ct_state & CT_RPL:
                    self._conns[key] = True  # answered: from now on +est both ways
                return CT_TRK | ct_state, self._set_mark(key, commit, mark)
        if not may_open:
            return CT_TRK | CT_INV, 0
        if commit:
            self._conns[zone, tup] = False
            return CT_TRK | CT_NEW, self._set_mark((zone, tup), commit, mark)
        return CT_TRK | CT_NEW, 0

    def _set_mark(self, key: tuple[int, _Tuple], commit: bool, mark: int | None) -> int:
        if commit and mark is not None:
            self._marks[key] = mark
        return self._marks.get(key, 0)

    def _related(self, zone: int, inner: _Tuple | None) -> tuple[int, int]:
        """An ICMP error about a connection: +rel, with that connection's ct_mark."""
        if inner is not None and (zone, inner) in self._conns:
            # about a packet the originator sent: going back
            return CT_TRK | CT_REL | CT_RPL, self._marks.get((zone, inner), 0)
        if inner is not None and (zone, _reverse(inner)) in self._conns:
            return CT_TRK | CT_REL, self._marks.get((zone, _reverse(inner)), 0)
        return CT_TRK | CT_INV, 0

    def flush(self, zone: int | None = None) -> None:
        self._conns = {key: replied for key, replied in self._conns.items()
                       if zone is not None and key[0] != zone}
        self._marks = {key: mark for key, mark in self._marks.items() if key in self._conns}

    def dump(self, zone: int | None = None) -> list[ConnEntry]:
        return [_conn_entry(z, tup, replied) for (z, tup), replied in self._conns.items()
                if zone is None or z == zone]

    def snapshot(self) -> tuple[dict[tuple[int, _Tuple], bool], dict[tuple[int, _Tuple], int]]:
        return dict(self._conns), dict(self._marks)

    def restore(self, snapshot: tuple[Mapping[tuple[int, _Tuple], bool],
                                      Mapping[tuple[int, _Tuple], int]]) -> None:
        self._conns, self._marks = dict(snapshot[0]), dict(snapshot[1])


def _reverse(t: _Tuple) -> _Tuple:
    eth, proto, src, sport, dst, dport = t
    return eth, proto, dst, dport, src, sport


def _conn_tuple(state: Mapping[str, int],
                carried: Mapping[str, object]) -> tuple[_Tuple, bool] | None:
    """The packet's tuple and whether it may open a connection; None if it cannot be tracked."""
    eth, proto, src, dst = _l3(state)
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        l4 = "tcp" if proto == IPPROTO_TCP else "udp"
        sport, dport = need(state, f"{l4}_src", f"{l4}_dst")
        flags = state.get("tcp_flags")
        opens = flags is None or flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
        return (eth, proto, src, sport, dst, dport), opens
    echo = _ECHO_TYPES.get((eth, proto))
    if echo is None:
        return (eth, proto, src, 0, dst, 0), True  # other protocols: by addresses alone
    (icmp_type,) = need(state, _ICMP_TYPE[eth])
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
    found = _conn_tuple(*split_header(inner))
    return None if found is None else found[0]


def _l3(state: Mapping[str, int]) -> tuple[int, int, int, int]:
    eth = state.get("eth_type")
    if eth not in IP_TYPES:
        raise FakeTableError(f"conntrack tracks IP packets, not eth_type={eth}")
    family = "ipv4" if eth == ETH_IPV4 else "ipv6"
    src, dst, proto = need(state, f"{family}_src", f"{family}_dst", "ip_proto")
    return eth, proto, src, dst


def _conn_entry(zone: int, tup: _Tuple, replied: bool) -> ConnEntry:
    eth, proto, src, sport, dst, dport = tup
    family = "ipv4" if eth == ETH_IPV4 else "ipv6"
    return ConnEntry(zone, proto, str(decode(f"{family}_src", src)),
                     str(decode(f"{family}_dst", dst)), sport, 0 if dport == _ECHO else dport,
                     replied)
