"""What a phase waits for: the MACs whose flows must reach a given number of switches, the
(MAC, switch) pairs still missing (what `wait` ends on) and when each MAC last arrived and
was committed (what `macs` and `report` answer)."""

from __future__ import annotations

from benchmarks.fake_fleet.wire import mac_bytes


class Tracker:
    """Tracked MACs: on how many switches each must arrive, and when it last did."""

    def __init__(self, macs: dict[str, int]) -> None:
        self.names = list(macs)
        self.index = {mac_bytes(m): i for i, m in enumerate(self.names)}
        self.expected = list(macs.values())
        self.seen = [0] * len(self.names)  # distinct switches that got it
        self.last_add = [0.0] * len(self.names)
        self.last_commit = [0.0] * len(self.names)
        self.remaining = sum(self.expected)  # (MAC, switch) pairs still to arrive

    def first_on_a_switch(self, i: int) -> None:
        self.seen[i] += 1
        if self.seen[i] <= self.expected[i]:
            self.remaining -= 1

    def summary(self) -> dict[str, list[float]]:
        return {m: [self.last_add[i], self.last_commit[i], self.seen[i]]
                for i, m in enumerate(self.names)}
