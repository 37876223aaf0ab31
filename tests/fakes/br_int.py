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
  AmbiguousMatch, unless they do the same (the same actions and goto: either may win);
- a packet recirculated more than MAX_RECIRCULATIONS times (OVS drops it) raises
  FakeTableError, as does a packet that lacks a header an action needs (a test's mistake).

This module holds the switch: FakeBrInt (lookup, a packet's run through the tables, what each
action does), Fate and Delivery (what a packet did) and AmbiguousMatch. The rest is split by
concern, and every name tests use is re-exported here, so tests import from this module only:
- tests/fakes/packets.py: what a packet is (a dict of header fields named like match fields;
  in_port and tunnel_id are arguments, not fields), the field tables and their encoding, the
  packet builders (arp_request, ipv4, tcp, icmp_error, reply...) and FakeTableError;
- tests/fakes/flow_checks.py: the checks run on the flows when the switch is built
  (InvalidFlow, check_openflow);
- tests/fakes/conntrack.py: connection tracking and its ct_state rules (Conntrack, ConnEntry);
- tests/fakes/meters.py: the meters' drop bands.

Beyond lookup and rewrite the switch models:
- conntrack (Ct), per zone (a constant, or the low 16 bits of a register): a packet through
  ct is +trk and +new, +est, +rel or +inv, with +rpl for replies, as tests/fakes/conntrack.py
  details; ct(commit) stores the connection of a +new packet. flush_conntrack() ends
  connections, as `ovs-appctl dpctl/flush-conntrack [zone=N]` does, and dump_conntrack()
  lists them.
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
  registers, ct_state...) in its metadata. A Controller with a meter_id passes only its copy
  through that meter ("meter:<id>" in Fate.drops when it drops it); the packet goes on.

send() returns a packet's whole Fate; process(), outputs() and the others are views of it.
Each call sends the packet once, so conntrack and meters see it; only trace() is a dry run
that leaves them as they were, so it can explain a failed assertion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ryu_dove.pipeline.flows import (
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
from tests.fakes.conntrack import ConnEntry, Conntrack
from tests.fakes.flow_checks import (
    PACKET_IN_REASONS,
    READ_ONLY,
    Entry,
    InvalidFlow,
    check_conflicts,
    check_meters,
    check_openflow,
    entry_of,
)
from tests.fakes.meters import OFPM13_MAX, Meters, still_clock
from tests.fakes.packets import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    CARRIED_FIELDS,
    CT_FIELDS,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FIELD_BITS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_FIELDS,
    IPV6_FIELDS,
    MAC_FIELDS,
    PIPELINE_FIELDS,
    REGISTERS,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    ZERO_MAC,
    FakeTableError,
    Header,
    Packet,
    arp,
    arp_request,
    decode,
    encode,
    icmp_echo,
    icmp_error,
    ip,
    ipv4,
    ipv6,
    nd_as_sent,
    need,
    neighbour_solicitation,
    reply,
    split_header,
    tcp,
    udp,
)

__all__ = [  # this module's names and those it re-exports, as they were before the split
    "ARP_REPLY", "ARP_REQUEST", "BROADCAST_MAC", "CARRIED_FIELDS", "CONTROLLER", "CT_FIELDS",
    "ETH_ARP", "ETH_IPV4", "ETH_IPV6", "FIELD_BITS", "IPPROTO_ICMP", "IPPROTO_ICMPV6",
    "IPPROTO_TCP", "IPPROTO_UDP", "IPV4_FIELDS", "IPV6_FIELDS", "MAC_FIELDS",
    "MAX_RECIRCULATIONS", "OFPM13_MAX", "PACKET_IN_REASONS", "PIPELINE_FIELDS", "READ_ONLY",
    "REGISTERS", "TCP_ACK", "TCP_FIN", "TCP_RST", "TCP_SYN", "ZERO_MAC",
    "AmbiguousMatch", "ConnEntry", "Conntrack", "Delivery", "FakeBrInt", "FakeTableError",
    "Fate", "Header", "InvalidFlow", "Packet",
    "arp", "arp_request", "check_openflow", "decode", "encode", "icmp_echo", "icmp_error", "ip",
    "ipv4", "ipv6", "neighbour_solicitation", "reply", "tcp", "udp",
]

CONTROLLER = 0xFFFFFFFD  # OFPP_CONTROLLER: where Controller() sends a packet
MAX_RECIRCULATIONS = 8  # OVS's userspace datapath drops deeper recirculation (MAX_RECIRC_DEPTH)


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


# --- the switch -----------------------------------------------------------------------------

class FakeBrInt:
    """br-int as the flows describe it; no table-miss flow means drop, as in OVS."""

    def __init__(self, flows: Iterable[Flow], meters: Mapping[int, int] | None = None,
                 clock: Callable[[], float] = still_clock) -> None:
        self.flows = frozenset(flows)
        for f in self.flows:
            check_openflow(f)
        check_conflicts(sorted(self.flows, key=lambda f: f.cookie))
        self._meters = Meters(meters or {}, clock)
        check_meters(self.flows, self._meters.rates)
        self._conntrack = Conntrack()
        self._tables: dict[Stage, list[Entry]] = {}
        for f in self.flows:
            self._tables.setdefault(f.stage, []).append(entry_of(f))

    def reload(self, flows: Iterable[Flow]) -> None:
        """New flows, as a reconciler's update leaves them; the datapath's connections and
        meters' state stay, as they do in OVS."""
        conntrack, meters = self._conntrack, self._meters
        self.__init__(flows)  # type: ignore[misc]
        self._conntrack, self._meters = conntrack, meters

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
        if len({(f.actions, f.goto) for f in winners}) > 1:
            lines = "\n  ".join(sorted(f.describe() for f in winners))
            raise AmbiguousMatch(f"{stage.name}: {len(winners)} flows match:\n  {lines}")
        return winners[0]


# --- one packet through the tables ---------------------------------------------------------

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
                 conntrack: Conntrack, meters: Meters) -> None:
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
            elif isinstance(action, Controller) and action.meter_id:
                # OVS meters only the copy it punts; the packet goes on either way
                if self._meters.admit(action.meter_id):
                    _apply(action, copy, self._deliveries)
                else:
                    self._drops.append(f"meter:{action.meter_id}")
            else:
                _apply(action, copy, self._deliveries)
        return True

    def _drop(self, why: str) -> bool:
        self._drops.append(why)
        return False

    def _ct(self, ct: Ct, copy: _Copy) -> None:
        zone = copy.state[ct.zone] & 0xFFFF if isinstance(ct.zone, str) else ct.zone
        ct_state, ct_mark = self._conntrack.track(zone, copy.state, copy.carried, ct.commit,
                                                  ct.mark)
        if ct.table is not None:
            if copy.recirculations >= MAX_RECIRCULATIONS:
                raise FakeTableError(f"recirculated more than {MAX_RECIRCULATIONS} times: "
                                     f"a loop through {ct.table.name}?")
            state = {**copy.state, "ct_state": ct_state, "ct_zone": zone, "ct_mark": ct_mark}
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
    state, carried = split_header(packet)
    state.update({name: 0 for name in (*REGISTERS, *CT_FIELDS)})
    state["in_port"] = encode("in_port", in_port)
    state["tunnel_id"] = encode("tunnel_id", tunnel_id)
    return state, carried


# --- what the other actions do -------------------------------------------------------------

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
    packet = nd_as_sent(packet)
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
    (ttl,) = need(state, "nw_ttl")
    if ttl <= 1:
        return False
    state["nw_ttl"] = ttl - 1
    return True
