"""A fake OpenFlow 1.3 switch that runs our Flow values on packets.

Tests ask where a packet goes ("is it output on port 3, with which tunnel key, rewritten how?")
instead of reading flow text, so they survive refactors of the compiler and catch what the
switch would actually do. The idea is faucet's clib/fakeoftable.py, applied to
ryu_dove.pipeline.flows.

The fake is stricter than OVS where OVS would be silent or undefined:
- a flow OVS would refuse (unknown field, missing match prerequisite, goto backwards) raises
  InvalidFlow when the switch is built;
- two flows of one table with the same priority and match but different actions (OVS keeps
  only the last one added) raise InvalidFlow;
- a packet matched by two flows of equal priority (which one wins is undefined) raises
  AmbiguousMatch.

A packet is a dict of header fields named like match fields; MACs and IPs are strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ryu_dove.pipeline.flows import IN_PORT, Flow, Move, Output, SetField
from ryu_dove.pipeline.stages import Stage

Packet = dict[str, int | str]

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58

MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha"})
IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
IPV6_FIELDS = frozenset({"ipv6_src", "ipv6_dst"})
REGISTERS = tuple(f"reg{i}" for i in range(16))
PIPELINE_FIELDS = frozenset({"in_port", "tunnel_id", *REGISTERS})  # not part of the packet

FIELD_BITS: Mapping[str, int] = {
    **{name: 48 for name in MAC_FIELDS},
    **{name: 32 for name in IPV4_FIELDS},
    **{name: 128 for name in IPV6_FIELDS},
    **{name: 32 for name in REGISTERS},
    "in_port": 32, "tunnel_id": 64, "eth_type": 16, "vlan_vid": 13, "arp_op": 16,
    "ip_proto": 8, "ip_dscp": 6, "tcp_src": 16, "tcp_dst": 16, "udp_src": 16, "udp_dst": 16,
    "icmpv4_type": 8, "icmpv4_code": 8, "icmpv6_type": 8, "icmpv6_code": 8,
}

_IP_TYPES = frozenset({ETH_IPV4, ETH_IPV6})
# OpenFlow 1.3 match prerequisites (spec 7.2.3.8): field prefix -> (field, allowed values).
_PREREQUISITES: tuple[tuple[str, tuple[tuple[str, frozenset[int]], ...]], ...] = (
    ("arp_", (("eth_type", frozenset({ETH_ARP})),)),
    ("ipv4_", (("eth_type", frozenset({ETH_IPV4})),)),
    ("ipv6_", (("eth_type", frozenset({ETH_IPV6})),)),
    ("ip_", (("eth_type", _IP_TYPES),)),
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
    port: int
    packet: Packet  # as rewritten when it was output
    tunnel_id: int


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
    _check_actions(f)
    if f.goto is not None and f.goto.table <= f.stage.table:
        raise InvalidFlow(f"goto must go to a later table: {f.describe()}")


def _action_fields(f: Flow) -> Iterable[str]:
    """Set-field and move need their fields' prerequisites in the match too (as OVS checks)."""
    for action in f.actions:
        if isinstance(action, SetField):
            yield action.field
        elif isinstance(action, Move):
            yield from (action.src, action.dst)


def _check_actions(f: Flow) -> None:
    for action in f.actions:
        if isinstance(action, SetField):
            try:
                encode(action.field, action.value)
            except ValueError as err:
                raise InvalidFlow(f"{err}: {f.describe()}") from err
        elif isinstance(action, Move) and action.n_bits > min(FIELD_BITS[action.src],
                                                              FIELD_BITS[action.dst]):
            raise InvalidFlow(f"{action.n_bits} bits do not fit {action.src}->{action.dst}: "
                              f"{f.describe()}")


def _check_prerequisites(name: str, exact: Mapping[str, int], f: Flow) -> None:
    if name not in FIELD_BITS:
        raise InvalidFlow(f"unknown field {name!r}: {f.describe()}")
    for prefix, needs in _PREREQUISITES:
        if not name.startswith(prefix):
            continue
        for field, allowed in needs:
            if exact.get(field) not in allowed:
                want = " or ".join(hex(v) for v in sorted(allowed))
                raise InvalidFlow(f"{name} needs {field}={want} in the match: {f.describe()}")


def _check_conflicts(flows: Iterable[Flow]) -> None:
    seen: dict[tuple[Stage, int, tuple[object, ...]], Flow] = {}
    for f in flows:
        key = (f.stage, f.priority, f.match)
        other = seen.setdefault(key, f)
        if other != f:
            raise InvalidFlow(f"same match and priority, different actions:\n  "
                              f"{other.describe()}\n  {f.describe()}")


# --- the switch -----------------------------------------------------------------------------

class FakeBrInt:
    """br-int as the flows describe it; no table-miss flow means drop, as in OVS."""

    def __init__(self, flows: Iterable[Flow]) -> None:
        self.flows = frozenset(flows)
        for f in self.flows:
            check_openflow(f)
        _check_conflicts(sorted(self.flows, key=lambda f: f.cookie))
        self._tables: dict[Stage, list[_Entry]] = {}
        for f in self.flows:
            self._tables.setdefault(f.stage, []).append(_entry(f))

    def process(self, packet: Mapping[str, int | str], in_port: int,
                tunnel_id: int = 0) -> list[Delivery]:
        return self._run(packet, in_port, tunnel_id)[0]

    def trace(self, packet: Mapping[str, int | str], in_port: int,
              tunnel_id: int = 0) -> list[Flow]:
        """The flows the packet hit, table by table: for messages when a test fails."""
        return self._run(packet, in_port, tunnel_id)[1]

    def outputs(self, packet: Mapping[str, int | str], in_port: int,
                tunnel_id: int = 0) -> set[int]:
        return {d.port for d in self.process(packet, in_port, tunnel_id)}

    def is_output(self, packet: Mapping[str, int | str], in_port: int, port: int,
                  tunnel_id: int = 0) -> bool:
        return port in self.outputs(packet, in_port, tunnel_id)

    def tunnel_outputs(self, packet: Mapping[str, int | str], in_port: int,
                       tunnel_id: int = 0) -> dict[int, int]:
        """Port -> tunnel key, for the copies sent with a tunnel key set."""
        return {d.port: d.tunnel_id for d in self.process(packet, in_port, tunnel_id)
                if d.tunnel_id != 0}

    def _run(self, packet: Mapping[str, int | str], in_port: int,
             tunnel_id: int) -> tuple[list[Delivery], list[Flow]]:
        state = _initial_state(packet, in_port, tunnel_id)
        deliveries: list[Delivery] = []
        path: list[Flow] = []
        stage: Stage | None = min(Stage, key=lambda s: s.table)
        while stage is not None:
            hit = self._lookup(stage, state)
            if hit is None:
                break  # table miss: drop
            path.append(hit)
            for action in hit.actions:
                _apply(action, state, deliveries)
            stage = hit.goto
        return deliveries, path

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


def _initial_state(packet: Mapping[str, int | str], in_port: int,
                   tunnel_id: int) -> dict[str, int]:
    clash = PIPELINE_FIELDS & packet.keys()
    if clash:
        raise ValueError(f"pass {sorted(clash)} as arguments, not in the packet")
    state = {name: encode(name, value) for name, value in packet.items()}
    state.update({reg: 0 for reg in REGISTERS})
    state["in_port"] = encode("in_port", in_port)
    state["tunnel_id"] = encode("tunnel_id", tunnel_id)
    return state


def _apply(action: object, state: dict[str, int], out: list[Delivery]) -> None:
    if isinstance(action, Output):
        _output(action.port, state, out)
    elif isinstance(action, SetField):
        state[action.field] = encode(action.field, action.value)
    elif isinstance(action, Move):
        _move(action, state)
    else:
        raise TypeError(f"unknown action {action!r}")


def _output(port: int, state: Mapping[str, int], out: list[Delivery]) -> None:
    in_port = state["in_port"]
    if port == in_port:
        return  # OpenFlow: never back out the in_port unless asked with IN_PORT
    target = in_port if port == IN_PORT else port
    packet = {k: decode(k, v) for k, v in state.items() if k not in PIPELINE_FIELDS}
    out.append(Delivery(target, packet, state["tunnel_id"]))


def _move(move: Move, state: dict[str, int]) -> None:
    """Copy the low n_bits of src over the low n_bits of dst (reg_move with offsets 0)."""
    if move.src not in state:
        raise FakeTableError(f"move from {move.src}, which the packet does not have")
    mask = (1 << move.n_bits) - 1
    state[move.dst] = (state.get(move.dst, 0) & ~mask) | (state[move.src] & mask)


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
