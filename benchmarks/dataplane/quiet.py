"""Is anything else loading the machine? Throughput here is CPU-bound, so other labs or
busy CPUs skew it: wait for quiet, or say it was not."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import machine_busy_pct, other_labs
from benchmarks.dataplane.base import QUIET_BUSY_PCT, Progress


def background(wait: float, progress: Progress) -> dict[str, Any]:
    """Is anything else loading the machine? Waits up to `wait` s for it to go quiet."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        labs, busy = other_labs(), machine_busy_pct(1.0)
        quiet = not labs and busy < QUIET_BUSY_PCT
        if quiet or time.monotonic() >= deadline:
            break
        if not told:
            progress(f"waiting up to {wait:.0f} s for a quiet machine (CPUs {busy:.0f}% busy, "
                     f"other labs: {', '.join(labs) or 'none'})")
            told = True
    if not quiet:
        progress(f"WARNING: the machine is not quiet (CPUs {busy:.0f}% busy, other labs: "
                 f"{', '.join(labs) or 'none'}); throughput figures will be skewed")
    return {"busy_pct_before": busy, "other_labs_before": labs, "quiet": quiet}
