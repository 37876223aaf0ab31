"""Flows as immutable values: what the compiler produces and the reconciler diffs.

A flow's cookie is its identity: an ownership byte, the stage, and a 48-bit hash of the
flow's whole content. Two flows with the same cookie are the same flow, so the reconciler
diffs the switch by cookie alone (no parsing of matches read back from OVS), deletes by exact
cookie, and flows without the ownership byte are recognised as foreign.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ryu_dove.pipeline.stages import Stage, allowed_next, allowed_recirculation

OWNER_BYTE = 0xD0  # "DOVE": the top byte of every cookie ryu_dove installs
OWNER_MASK = 0xFF << 56
STAGE_MASK = 0xFF << 48
IN_PORT = 0xFFFFFFF8  # OFPP_IN_PORT: send back where it came from

MatchValue = int | str | tuple[int, int] | tuple[str, str]  # value or (value, mask)

# ct_state bits, as OVS numbers them (ovs-fields(7)); match them with ct_state("+trk+est").
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CT_FLAGS: Mapping[str, int] = {"new": CT_NEW, "est": CT_EST, "rel": CT_REL, "rpl": CT_RPL,
                               "inv": CT_INV, "trk": CT_TRK}


# The actions' reprs are written out, in exactly the text dataclasses would generate (but for
# Ct's stage, see there): a cookie hashes them (so the text must never change), and the
# generated ones are several times slower (docs/benchmarks.md, cookie hashing).

@dataclass(frozen=True, slots=True, repr=False)
class Output:
    port: int

    def __repr__(self) -> str:
        return f"Output(port={self.port!r})"


@dataclass(frozen=True, slots=True, repr=False)
class SetField:
    field: str
    value: int | str

    def __repr__(self) -> str:
        return f"SetField(field={self.field!r}, value={self.value!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Move:
    """Copy n_bits of one field to another (Nicira reg_move), e.g. eth_src -> eth_dst."""

    src: str
    dst: str
    n_bits: int

    def __repr__(self) -> str:
        return f"Move(src={self.src!r}, dst={self.dst!r}, n_bits={self.n_bits!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Ct:
    """Run the packet through conntrack (Nicira ct) in a zone: a constant, or the low 16 bits
    of a register ("reg3", as zone=NXM_NX_REG3[0..15]). commit stores the connection (with
    `mark` as its ct_mark, if given); table recirculates a tracked copy into that stage while
    the original goes on untracked."""

    commit: bool = False
    zone: int | str = 0
    table: Stage | None = None
    mark: int | None = None

    def __repr__(self) -> str:
        # The stage by name: an Enum's repr embeds its StageSpec, whose frozenset prints in a
        # hash-seeded order, so the cookie would change from one run to the next.
        table = None if self.table is None else f"Stage.{self.table.name}"
        return (f"Ct(commit={self.commit!r}, zone={self.zone!r}, table={table}, "
                f"mark={self.mark!r})")


@dataclass(frozen=True, slots=True, repr=False)
class DecTtl:
    """Decrement the IPv4 TTL or IPv6 hop limit; at 0 or 1 the switch stops the packet."""

    def __repr__(self) -> str:
        return "DecTtl()"


@dataclass(frozen=True, slots=True, repr=False)
class Meter:
    """Pass the packet through a meter first (an OpenFlow 1.3 meter instruction)."""

    meter_id: int

    def __repr__(self) -> str:
        return f"Meter(meter_id={self.meter_id!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Controller:
    """Send the packet to the controller (output to OFPP_CONTROLLER), max_len bytes of it.
    With a meter_id, a copy of the packet goes through that meter on its way to the
    controller and the packet itself goes on untouched (OVS's controller(meter_id=...);
    docs/research/punts-ovs-3.1.md). The meter must exist before the flow is added."""

    max_len: int = 0xFFE5  # OFPCML_MAX
    reason: str = "action"
    meter_id: int = 0  # 0: no meter of its own

    def __repr__(self) -> str:
        # meter_id only when set: the text of flows without one (their cookies) stays as it was
        meter = f", meter_id={self.meter_id!r}" if self.meter_id else ""
        return f"Controller(max_len={self.max_len!r}, reason={self.reason!r}{meter})"


Action = Output | SetField | Move | Ct | DecTtl | Meter | Controller


@dataclass(frozen=True, slots=True)
class Flow:
    stage: Stage
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    goto: Stage | None = None
    idle_timeout: int = 0  # seconds unused before the switch removes it and says so (0: never)
    cookie: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cookie", _cookie(self))

    def __hash__(self) -> int:
        return self.cookie  # a hash of the whole content already: sets of flows stay cheap

    @property
    def match_dict(self) -> dict[str, MatchValue]:
        return dict(self.match)

    def describe(self) -> str:
        """One line in the spirit of ovs-ofctl, with stage names, for logs and tests."""
        m = ",".join(f"{k}={_fmt_match(k, v)}" for k, v in self.match)
        acts = [_fmt_action(a) for a in self.actions]
        if self.goto is not None:
            acts.append(f"goto:{self.goto.name.lower()}")
        idle = f" idle_timeout={self.idle_timeout}" if self.idle_timeout else ""
        return (f"{self.stage.name.lower()} prio={self.priority}{idle} {m or '*'} "
                f"actions={','.join(acts) or 'drop'}")


FlowMap = Mapping[int, Flow]  # cookie -> flow: a switch's flows or a part of them; read-only


def flow(stage: Stage, priority: int, match: Mapping[str, MatchValue] | None = None,
         actions: Iterable[Action] = (), goto: Stage | None = None,
         idle_timeout: int = 0) -> Flow:
    """Build a flow with its match in canonical (sorted) order."""
    return Flow(stage, priority, tuple(sorted((match or {}).items())), tuple(actions), goto,
                idle_timeout)


def ct_state(flags: str) -> tuple[int, int]:
    """The (value, mask) of an OVS-style ct_state match: "+trk+est-rel" sets trk and est and
    clears rel; flags not named are wildcarded."""
    parts = re.findall(r"([+-])([a-z]+)", flags)
    if not parts or "".join(sign + name for sign, name in parts) != flags:
        raise ValueError(f"ct_state flags look like '+trk-new', not {flags!r}")
    value = mask = 0
    for sign, name in parts:
        bit = CT_FLAGS.get(name)
        if bit is None:
            raise ValueError(f"unknown ct_state flag {name!r} (known: {', '.join(CT_FLAGS)})")
        mask |= bit
        value |= bit if sign == "+" else 0
    return value, mask


def _cookie(f: Flow) -> int:
    text = repr((f.stage.name, f.priority, f.match, f.actions, f.goto and f.goto.name))
    if f.idle_timeout:  # only then: the cookies of every other flow stay as they were
        text += f"idle={f.idle_timeout}"
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")
    return (OWNER_BYTE << 56) | (f.stage.cookie_id << 48) | digest


def is_ours(cookie: int) -> bool:
    return (cookie & OWNER_MASK) == OWNER_BYTE << 56


class FlowError(ValueError):
    pass


def check_flow(f: Flow) -> None:
    """Reject a flow its stage does not allow: unknown match fields, or a goto backwards."""
    spec = f.stage.value
    extra = {k for k, _ in f.match} - spec.fields
    if extra:
        raise FlowError(f"{f.stage.name} does not match on {sorted(extra)}: {f.describe()}")
    if f.goto is not None and f.goto not in allowed_next(f.stage):
        raise FlowError(f"{f.stage.name} may not go to {f.goto.name}: {f.describe()}")
    for a in f.actions:  # recirculation is a jump too: to where goto may, or named for it
        if isinstance(a, Ct) and a.table is not None \
                and a.table not in (*allowed_next(f.stage), *allowed_recirculation(f.stage)):
            raise FlowError(f"{f.stage.name} may not recirculate to {a.table.name}: "
                            f"{f.describe()}")


def _fmt(v: MatchValue) -> str:
    if isinstance(v, tuple):
        return f"{_fmt(v[0])}/{_fmt(v[1])}"
    return hex(v) if isinstance(v, int) and v > 0xFFFF else str(v)


def _fmt_match(name: str, v: MatchValue) -> str:
    if name == "ct_state":  # as ovs-ofctl prints it: +est+trk, flags in bit order
        value, mask = v if isinstance(v, tuple) else (v, 0xFFFFFFFF)
        known = sum(CT_FLAGS.values())
        if isinstance(value, int) and isinstance(mask, int) and mask and not mask & ~known:
            return "".join(("+" if value & bit else "-") + flag
                           for flag, bit in sorted(CT_FLAGS.items(), key=lambda kv: kv[1])
                           if mask & bit)
    return _fmt(v)


def _fmt_action(a: Action) -> str:
    if isinstance(a, Output):
        return "in_port" if a.port == IN_PORT else f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set:{a.field}={a.value}"
    if isinstance(a, Ct):
        return _fmt_ct(a)
    if isinstance(a, DecTtl):
        return "dec_ttl"
    if isinstance(a, Meter):
        return f"meter:{a.meter_id}"
    if isinstance(a, Controller):
        return _fmt_controller(a)
    return f"move:{a.src}->{a.dst}"


def _fmt_ct(a: Ct) -> str:
    opts = ["commit"] if a.commit else []
    if isinstance(a.zone, str):
        opts.append(f"zone={a.zone}[0..15]")
    elif a.zone:
        opts.append(f"zone={a.zone}")
    if a.table is not None:
        opts.append(f"table={a.table.name.lower()}")
    if a.mark is not None:
        opts.append(f"exec(set_field:{a.mark:#x}->ct_mark)")
    return f"ct({','.join(opts)})" if opts else "ct"


def _fmt_controller(a: Controller) -> str:
    opts = [f"reason={a.reason}"] if a.reason != "action" else []
    if a.max_len != 0xFFE5:
        opts.append(f"max_len={a.max_len}")
    return f"controller({','.join(opts)})" if opts else "controller"
