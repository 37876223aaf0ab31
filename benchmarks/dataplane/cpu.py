"""CPU accounting from /proc: the whole machine's shares, and each watched process's per
thread (ovs-vswitchd of each hypervisor, the controller), between two snapshots."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    machine: tuple[int, ...]  # the "cpu" line of /proc/stat, in ticks
    threads: dict[str, dict[int, tuple[str, int]]]  # process label -> tid -> (name, ticks)


def _thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    ticks: dict[int, tuple[str, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return ticks
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(tid)] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
    return ticks


def cpu_snapshot(pids: dict[str, int]) -> CpuSnapshot:
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    return CpuSnapshot(time.monotonic(), tuple(int(v) for v in line[1:]),
                       {label: _thread_ticks(pid) for label, pid in pids.items()})


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Machine-wide shares (% of all CPUs) and each process's % of one core, by thread."""
    delta = [b - a for a, b in zip(before.machine, after.machine, strict=True)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    user, nice, system, idle, iowait, irq, softirq, steal = delta[:8]
    wall = max(after.at - before.at, 1e-9)
    out: dict[str, Any] = {"machine": {
        "busy_pct": round(100 * (total - idle - iowait) / total, 1),
        "user_pct": round(100 * (user + nice) / total, 1),
        "system_pct": round(100 * system / total, 1),
        "softirq_pct": round(100 * (irq + softirq) / total, 1),
        "steal_pct": round(100 * steal / total, 1),
    }, "processes": {}}
    for label, threads in after.threads.items():
        old = before.threads.get(label, {})
        per_thread: dict[str, float] = {}
        for tid, (name, ticks) in threads.items():
            used = ticks - old.get(tid, (name, 0))[1]
            per_thread[name] = per_thread.get(name, 0.0) + 100 * used / CLK_TCK / wall
        busiest = [kv for kv in sorted(per_thread.items(), key=lambda kv: -kv[1])[:3]
                   if kv[1] >= 0.05]
        out["processes"][label] = {
            "pct_of_one_core": round(sum(per_thread.values()), 1),
            "busiest_threads": {name: round(pct, 1) for name, pct in busiest},
        }
    return out


def average_usage(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several cpu_usage results (same keys), busiest threads of the first kept."""
    if not samples:
        return {}
    first = samples[0]
    out: dict[str, Any] = {"machine": {k: round(statistics.fmean(s["machine"][k] for s in samples),
                                                1) for k in first["machine"]},
                           "processes": {}}
    for label in first["processes"]:
        rows = [s["processes"][label] for s in samples if label in s["processes"]]
        names = {n for r in rows for n in r["busiest_threads"]}
        means = {n: statistics.fmean(r["busiest_threads"].get(n, 0.0) for r in rows)
                 for n in names}
        threads = {n: round(pct, 1) for n, pct in means.items() if pct >= 0.05}
        out["processes"][label] = {
            "pct_of_one_core": round(statistics.fmean(r["pct_of_one_core"] for r in rows), 1),
            "busiest_threads": dict(sorted(threads.items(), key=lambda kv: -kv[1])[:3]),
        }
    return out
