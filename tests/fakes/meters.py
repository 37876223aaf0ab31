"""The fake switch's meters (tests/fakes/br_int.py runs Meter actions through them).

Here, apart from the switch, because rate limiting keeps its own state and clock. Each meter
is a drop band in packets per second: it passes at most that many packets per second of the
injected clock (still_clock, standing at 0, when a test gives none) and drops the rest.
FakeBrInt's docstring says how a flow uses them; flow_checks.py checks their ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

OFPM13_MAX = 0xFFFF0000  # the highest meter id OpenFlow 1.3 allows


class Meters:
    """Drop bands in packets per second, counted per second of the injected clock."""

    def __init__(self, rates: Mapping[int, int], clock: Callable[[], float]) -> None:
        bad = sorted(m for m, rate in rates.items() if not (0 < m <= OFPM13_MAX and rate > 0))
        if bad:
            raise ValueError(f"meters need an id in 1..{OFPM13_MAX:#x} and a positive rate: "
                             f"{bad}")
        self.rates = dict(rates)
        self._clock = clock
        self._passed: dict[int, tuple[int, int]] = {}  # meter -> (second, packets passed)

    def admit(self, meter_id: int) -> bool:
        second = math.floor(self._clock())
        start, passed = self._passed.get(meter_id, (second, 0))
        if start != second:
            passed = 0
        if passed >= self.rates[meter_id]:
            return False
        self._passed[meter_id] = (second, passed + 1)
        return True

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return dict(self._passed)

    def restore(self, snapshot: Mapping[int, tuple[int, int]]) -> None:
        self._passed = dict(snapshot)


def still_clock() -> float:
    return 0.0  # without a clock, all packets fall in one second
