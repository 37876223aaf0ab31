"""When the engine's heap is frozen out of the garbage collector, and when it is swept.

At a thousand switches the controller holds millions of long-lived objects (flows, parts,
reconciler state). CPython's full collection walks all of them with every thread stopped,
long enough on its own to break the event latency target (figures: docs/benchmarks.md,
"The heap frozen after every batch"). Nearly all of that heap is built by a few big
batches (the first synchronisation, a policy reload, switches reconnecting) and then lives
until the next one.

So the heap is frozen (`gc.freeze()`, a constant-time list splice: the objects move to a
generation the collector never walks; reference counting still frees whatever becomes
unreachable) after every batch that did something. The collector then still collects
young objects as they come (within a batch), but a full collection only walks what the
current batch promoted. Freezing only after long batches or on a timer was tried first and
left full collections of everything promoted since (docs/benchmarks.md).

What freezing cannot free is a reference cycle that becomes garbage after it was frozen. The
engine's data holds none by design: after cold start and 6,000 endpoint events at 1,000
switches, a full collection of the unfrozen heap found 0 unreachable objects, and none after
30 updates through the OVSDB manager's IDL either. A sweep
(unfreeze, full collection, freeze) returns whatever did arise: when the engine is idle, at
most every `sweep_every_s`, and regardless of load every `sweep_max_s` (a pause of about a
second at 1,000 switches, once an hour under continuous load).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

SWEEP_EVERY_S = 600.0
SWEEP_MAX_S = 3600.0


class GcPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic, collector: Any = gc,
                 sweep_every_s: float = SWEEP_EVERY_S, sweep_max_s: float = SWEEP_MAX_S,
                 ) -> None:
        self._clock = clock
        self._gc = collector
        self._sweep_every_s = sweep_every_s
        self._sweep_max_s = sweep_max_s
        self._last_sweep = clock()
        self.sweeps = 0

    def after_batch(self, events: int) -> None:
        """Called by the engine after each batch, even one without events (timers run in
        those, and the first synchronisation programs every switch in one)."""
        since_sweep = self._clock() - self._last_sweep
        if events == 0 and since_sweep >= self._sweep_every_s or since_sweep >= self._sweep_max_s:
            self._sweep()
        else:
            self._gc.freeze()

    @property
    def frozen(self) -> int:
        return int(self._gc.get_freeze_count())

    def _sweep(self) -> None:
        started = time.perf_counter()
        self._gc.unfreeze()
        found = self._gc.collect()
        self._gc.freeze()
        self._last_sweep = self._clock()
        self.sweeps += 1
        # Unreachable objects here are cycles that froze as garbage: worth knowing about.
        LOG.log(logging.INFO if found else logging.DEBUG,
                "heap sweep: %d unreachable objects freed, %d kept, %.0f ms", found,
                self.frozen, 1000 * (time.perf_counter() - started))
