"""What the controller costs while it works: CPU (this process minus the benchmark's main
thread), the engine's busy time, the garbage collector's time, and peak memory."""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path
from typing import Any


class GcMeter:
    """Wall time spent in the garbage collector, per generation (all threads of this process)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.count[info["generation"]] += 1

    def figures(self) -> dict[str, Any]:
        return {"gc_s": [round(s, 2) for s in self.seconds], "gc_collections": self.count}


class CpuMeter:
    """Controller CPU: this process's CPU time minus the benchmark's main thread's; and the
    engine's own account of the wall time it spent applying batches (the rest of the CPU is
    os-ken's app threads, the OVSDB manager, the API and the garbage collector)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.process0, self.main0 = time.process_time(), time.thread_time()

    def controller_s(self) -> float:
        return (time.process_time() - self.process0) - (time.thread_time() - self.main0)

    def mark(self) -> tuple[float, float]:
        return self.controller_s(), self.engine.stats.busy_s

    def since(self, mark: tuple[float, float]) -> tuple[float, float]:
        cpu, engine = self.mark()
        return cpu - mark[0], engine - mark[1]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
