"""What an operator may set about learning (dove-controller --learn-*)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_IDLE_S = 0xFFFF  # an OpenFlow idle timeout is 16 bits of seconds


@dataclass(frozen=True)
class LearnSettings:
    limit: int = 8  # addresses one port may have learned at once
    idle_s: int = 300  # a learned address unused this long is retired
    mute_after: int = 20  # refused claims from one port within mute_window_s mute it...
    mute_window_s: float = 10.0
    mute_s: float = 60.0  # ...for this long: its punts are withdrawn
    punts_per_s: float = 200.0  # per switch, read from its connection before any parsing
    punt_burst: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 64:
            raise ValueError(f"learn limit {self.limit} is not within 1..64 addresses")
        if not 1 <= self.idle_s <= MAX_IDLE_S:
            raise ValueError(f"learn expiry {self.idle_s} s is not within 1..{MAX_IDLE_S} s "
                             "(an OpenFlow idle timeout)")


DEFAULT = LearnSettings()
