"""Flows checked as a switch would on flow-mod, for the fake switch (tests/fakes/br_int.py).

Here, apart from the switch, because these checks run once, when FakeBrInt is built, and never
on a packet: each flow's match pre-encoded for lookup (Entry), and InvalidFlow for what OVS
would refuse (unknown field, missing match prerequisite, goto backwards, a write to a
read-only field, ct or dec_ttl without an IP match, a meter out of place or unknown, a bad
packet-in) or could not hold (two flows of one table with the same priority and match but
different actions: OVS keeps only the last one added). br_int.py's docstring lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ryu_dove.pipeline.flows import (
    CT_INV,
    Controller,
    Ct,
    DecTtl,
    Flow,
    Meter,
    Move,
    SetField,
)
from ryu_dove.pipeline.stages import Stage
from tests.fakes.meters import OFPM13_MAX
from tests.fakes.packets import (
    CT_FIELDS,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FIELD_BITS,
    IP_TYPES,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ND_ADVERT,
    ND_SOLICIT,
    REGISTERS,
    FakeTableError,
    encode,
)

PACKET_IN_REASONS = frozenset({"no_match", "action", "invalid_ttl"})  # OpenFlow 1.3's
READ_ONLY = frozenset({"eth_type", "ip_proto", *CT_FIELDS})  # OVS refuses to write these

# OpenFlow 1.3 match prerequisites (spec 7.2.3.8): field prefix -> (field, allowed values).
_PREREQUISITES: tuple[tuple[str, tuple[tuple[str, frozenset[int]], ...]], ...] = (
    ("arp_", (("eth_type", frozenset({ETH_ARP})),)),
    ("ipv4_", (("eth_type", frozenset({ETH_IPV4})),)),
    ("ipv6_", (("eth_type", frozenset({ETH_IPV6})),)),
    ("ip_", (("eth_type", IP_TYPES),)),
    ("nw_", (("eth_type", IP_TYPES),)),
    ("tcp_", (("eth_type", IP_TYPES), ("ip_proto", frozenset({IPPROTO_TCP})))),
    ("udp_", (("eth_type", IP_TYPES), ("ip_proto", frozenset({IPPROTO_UDP})))),
    ("icmpv4_", (("eth_type", frozenset({ETH_IPV4})), ("ip_proto", frozenset({IPPROTO_ICMP})))),
    ("icmpv6_", (("eth_type", frozenset({ETH_IPV6})),
                 ("ip_proto", frozenset({IPPROTO_ICMPV6})))),
    # neighbour discovery (OVS: nd_sll only in a solicitation, nd_tll only in an advert)
    *((name, (("eth_type", frozenset({ETH_IPV6})), ("ip_proto", frozenset({IPPROTO_ICMPV6})),
              ("icmpv6_type", types)))
      for name, types in (("ipv6_nd_target", frozenset({ND_SOLICIT, ND_ADVERT})),
                          ("ipv6_nd_sll", frozenset({ND_SOLICIT})),
                          ("ipv6_nd_tll", frozenset({ND_ADVERT})),
                          ("nd_", frozenset({ND_SOLICIT, ND_ADVERT})))),
)


class InvalidFlow(FakeTableError):
    """A flow a real switch would refuse, or two flows it could not both hold."""


@dataclass(frozen=True)
class Entry:
    """One flow, its match pre-encoded as (field, value, mask)."""

    flow: Flow
    match: tuple[tuple[str, int, int], ...]

    def matches(self, state: Mapping[str, int]) -> bool:
        return all(name in state and state[name] & mask == value & mask
                   for name, value, mask in self.match)


def entry_of(f: Flow) -> Entry:
    fields = []
    for name, spec in f.match:
        if isinstance(spec, tuple):
            value, mask = encode(name, spec[0]), encode(name, spec[1])
        else:
            value, mask = encode(name, spec), (1 << FIELD_BITS[name]) - 1
        fields.append((name, value, mask))
    return Entry(f, tuple(fields))


def check_openflow(f: Flow) -> None:
    """Refuse what OVS refuses: unknown fields, unmet prerequisites, backwards gotos."""
    try:
        entry = entry_of(f)
    except (KeyError, ValueError) as err:
        raise InvalidFlow(f"{err}: {f.describe()}") from err
    exact = {name: value for name, value, mask in entry.match
             if mask == (1 << FIELD_BITS[name]) - 1}
    for name in (*f.match_dict, *_action_fields(f)):
        _check_prerequisites(name, exact, f)
    _check_actions(f, entry, exact)
    if f.goto is not None and f.goto.table <= f.stage.table:
        raise InvalidFlow(f"goto must go to a later table: {f.describe()}")


def check_conflicts(flows: Iterable[Flow]) -> None:
    seen: dict[tuple[Stage, int, tuple[object, ...]], Flow] = {}
    for f in flows:
        key = (f.stage, f.priority, f.match)
        other = seen.setdefault(key, f)
        if other != f:
            raise InvalidFlow(f"same match and priority, different actions:\n  "
                              f"{other.describe()}\n  {f.describe()}")


def check_meters(flows: Iterable[Flow], meters: Mapping[int, int]) -> None:
    for f in flows:
        for action in f.actions:
            meter = (action.meter_id if isinstance(action, Meter)
                     else action.meter_id if isinstance(action, Controller) else 0)
            if meter and meter not in meters:  # OVS would punt unmetered forever
                raise InvalidFlow(f"meter {meter} does not exist: {f.describe()}")


def _action_fields(f: Flow) -> Iterable[str]:
    """Set-field and move need their fields' prerequisites in the match too (as OVS checks)."""
    for action in f.actions:
        if isinstance(action, SetField):
            yield action.field
        elif isinstance(action, Move):
            yield from (action.src, action.dst)


def _check_actions(f: Flow, entry: Entry, exact: Mapping[str, int]) -> None:
    meters = [i for i, action in enumerate(f.actions) if isinstance(action, Meter)]
    if meters not in ([], [0]):  # OpenFlow 1.3: one meter instruction, run before the actions
        raise InvalidFlow(f"a flow has one meter, before its other actions: {f.describe()}")
    for action in f.actions:
        problem = _action_problem(action, entry, exact)
        if problem:
            raise InvalidFlow(f"{problem}: {f.describe()}")


def _action_problem(action: object, entry: Entry, exact: Mapping[str, int]) -> str | None:
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
    if isinstance(action, Ct | DecTtl) and exact.get("eth_type") not in IP_TYPES:
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


def _ct_problem(ct: Ct, entry: Entry) -> str | None:
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
