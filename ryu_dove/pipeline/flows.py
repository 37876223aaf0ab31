"""Flows as immutable values: what the compiler produces and the reconciler diffs.

A flow's cookie is its identity: an ownership byte, the stage, and a 48-bit hash of the
flow's whole content. Two flows with the same cookie are the same flow, so the reconciler
diffs the switch by cookie alone (no parsing of matches read back from OVS), deletes by exact
cookie, and flows without the ownership byte are recognised as foreign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ryu_dove.pipeline.stages import Stage, allowed_next

OWNER_BYTE = 0xD0  # "DOVE": the top byte of every cookie ryu_dove installs
OWNER_MASK = 0xFF << 56
STAGE_MASK = 0xFF << 48
IN_PORT = 0xFFFFFFF8  # OFPP_IN_PORT: send back where it came from

MatchValue = int | str | tuple[int, int] | tuple[str, str]  # value or (value, mask)


# The actions' reprs are written out, in exactly the text dataclasses would generate: a
# cookie hashes them (so the text must never change), and the generated ones cost 1-2 us each.

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


Action = Output | SetField | Move


@dataclass(frozen=True, slots=True)
class Flow:
    stage: Stage
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    goto: Stage | None = None
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
        m = ",".join(f"{k}={_fmt(v)}" for k, v in self.match)
        acts = [_fmt_action(a) for a in self.actions]
        if self.goto is not None:
            acts.append(f"goto:{self.goto.name.lower()}")
        return (f"{self.stage.name.lower()} prio={self.priority} {m or '*'} "
                f"actions={','.join(acts) or 'drop'}")


FlowMap = Mapping[int, Flow]  # cookie -> flow: a switch's flows or a part of them; read-only


def flow(stage: Stage, priority: int, match: Mapping[str, MatchValue] | None = None,
         actions: Iterable[Action] = (), goto: Stage | None = None) -> Flow:
    """Build a flow with its match in canonical (sorted) order."""
    return Flow(stage, priority, tuple(sorted((match or {}).items())), tuple(actions), goto)


def _cookie(f: Flow) -> int:
    text = repr((f.stage.name, f.priority, f.match, f.actions, f.goto and f.goto.name))
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


def _fmt(v: MatchValue) -> str:
    if isinstance(v, tuple):
        return f"{_fmt(v[0])}/{_fmt(v[1])}"
    return hex(v) if isinstance(v, int) and v > 0xFFFF else str(v)


def _fmt_action(a: Action) -> str:
    if isinstance(a, Output):
        return "in_port" if a.port == IN_PORT else f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set:{a.field}={a.value}"
    return f"move:{a.src}->{a.dst}"
