"""Sessions: a batch of (src, dst) pairs probed together, and each pair's count of echoes
sent and replies classified."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from benchmarks.probe_icmp.base import ProbeVm
from benchmarks.probe_icmp.packets import EchoTemplate


@dataclass
class Pair:
    """One (src, dst) pair of a session: its ICMP identifier, what was sent, what came back."""

    ident: int
    src: ProbeVm
    dst: ProbeVm
    budget: int | None  # None: until the first reply; n: exactly n echoes
    session: Session
    seq: int = 0
    sent: int = 0
    replies: int = 0
    first_sent: float | None = None
    first_reply: float | None = None
    template: EchoTemplate | None = None
    own_network_replies: int = 0  # answered by another VM of src's network (same address)
    stale_replies: int = 0  # dst's MAC and IP but not its TTL (an older incarnation)

    @property
    def active(self) -> bool:
        if self.budget is None:
            return self.first_reply is None
        return self.sent < self.budget


@dataclass
class Session:
    """One batch of pairs probed together; `done` is set when the batch is finished."""

    pairs: list[Pair] = field(default_factory=list)
    linger: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    last_send: float = 0.0

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def first_replies(self) -> dict[tuple[str, str], float | None]:
        return {(p.src.name, p.dst.name): p.first_reply for p in self.pairs}

    def replies(self) -> dict[tuple[str, str], int]:
        return {(p.src.name, p.dst.name): p.replies for p in self.pairs}

    def own_network_replies(self) -> dict[tuple[str, str], int]:
        return {(p.src.name, p.dst.name): p.own_network_replies for p in self.pairs}

    def unanswered(self) -> list[tuple[str, str]]:
        return sorted((p.src.name, p.dst.name) for p in self.pairs if p.first_reply is None)

    def sent(self) -> int:
        return sum(p.sent for p in self.pairs)
