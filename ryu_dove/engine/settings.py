"""The engine's settings and counters, and what it needs of the switch connections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_EXPIRY_S = 7 * 86400.0  # docs/availability.md says why a week


class SwitchIO(Protocol):
    """The switch connections the engine's thread runs (ryu_dove.openflow.server)."""

    def poll(self, timeout: float) -> list[Any]: ...
    def wake(self) -> None: ...


@dataclass
class EngineStats:
    batches: int = 0
    events: int = 0
    busy_s: float = 0.0  # wall time spent applying batches and recomputing
    longest_s: float = 0.0

    def add(self, events: int, seconds: float) -> None:
        self.batches += 1
        self.events += events
        self.busy_s += seconds
        self.longest_s = max(self.longest_s, seconds)


@dataclass(frozen=True)
class Timing:
    min_grace_s: float = 1.0  # always wait this long after start before changing switches
    max_grace_s: float = 30.0  # stop waiting for silent hypervisors after this long
    expiry_s: float = DEFAULT_EXPIRY_S  # a hypervisor unheard this long is removed; 0: never
    expiry_check_s: float = 5.0
    counters_s: float = 15.0  # how often every switch's rule flows' packet counts are read
    tick_s: float = 0.25
