"""What a run costs and who else used the machine: processes' CPU and memory, br-int's flows.

The lab, its controller and the probes share the CPUs with whatever else runs. CPU used by
other processes while converging is recorded; above DISTURBED_SHARE of one CPU the run is
marked `disturbed`.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.convergence.base import BenchError, say
from dove_lab.lab import Lab
from ovsdb_agent import contract

DISTURBED_SHARE = 0.1  # foreign CPU above 10% of one CPU while converging: a disturbed run

ProcTicks = dict[int, tuple[int, str]]  # pid: (utime+stime in clock ticks, command)


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_mb: float
    hwm_mb: float


def proc_usage(pid: int) -> Usage:
    """The controller's CPU seconds since it started, its VmRSS and VmHWM (its peak)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise BenchError(f"the controller (pid {pid}) is gone: {exc}") from exc
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
          if line.startswith(("VmRSS:", "VmHWM:"))}
    return Usage(cpu, kb.get("VmRSS", 0) / 1024, kb.get("VmHWM", 0) / 1024)


def flow_counts(lab: Lab) -> dict[str, int]:
    """OpenFlow flows on each hypervisor's br-int (`ovs-ofctl dump-aggregate`)."""
    counts = {}
    for hv in lab.state().hypervisors.values():
        ovs = lab.ovs(hv)
        out = ovs.ofctl("dump-aggregate", ovs.bridge_mgmt(contract.INTEGRATION_BRIDGE))
        m = re.search(r"flow_count=(\d+)", out)
        if m is None:
            raise BenchError(f"cannot read br-int's flow count on {hv.name}: {out.strip()}")
        counts[hv.name] = int(m.group(1))
    return counts


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ovs = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        ovs = "unknown"
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "ovs": ovs, "python": platform.python_version(),
            "datapath": "netdev (userspace)"}


def cpu_ticks_by_pid() -> ProcTicks:
    """utime+stime (clock ticks) and command of every process on the machine."""
    out: ProcTicks = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        out[int(proc.name)] = (int(fields[11]) + int(fields[12]), cmd.strip()[:120])
    return out


def foreign_cpu(before: ProcTicks, after: ProcTicks, ours: Callable[[int, str], bool],
                skip: Iterable[int] = ()) -> tuple[float, float, list[str]]:
    """CPU seconds used between two samples by processes of this lab's (ours(pid, cmd) is
    True, e.g. its OVS) and by everything else on the machine but `skip`, with the busiest."""
    ticks = os.sysconf("SC_CLK_TCK")
    mine, used = 0.0, []
    skipped = set(skip)
    for pid, (t1, cmd) in after.items():
        t0 = before.get(pid, (0, cmd))[0]
        if t1 <= t0 or not cmd or pid in skipped:
            continue
        if ours(pid, cmd):
            mine += (t1 - t0) / ticks
        else:
            used.append(((t1 - t0) / ticks, cmd))
    used.sort(reverse=True)
    return round(mine, 3), round(sum(u for u, _ in used), 3), [f"{u:.2f}s {c}" for u, c in used[:3]]


@dataclass(frozen=True)
class CpuSample:
    """The controller, this process (probes, plugging) and every process, at one moment."""
    controller: Usage
    own: resource.struct_rusage
    procs: ProcTicks


def cpu_sample(controller_pid: int) -> CpuSample:
    return CpuSample(proc_usage(controller_pid), resource.getrusage(resource.RUSAGE_SELF),
                     cpu_ticks_by_pid())


def phase_cpu(before: CpuSample, after: CpuSample, lab_ovs: Callable[[int, str], bool],
              controller_pid: int, wall_s: float) -> dict[str, Any]:
    """Who used the CPUs during a phase of `wall_s` seconds (the result's `*_converge_*`)."""
    ovs_s, others_s, others_top = foreign_cpu(before.procs, after.procs, lab_ovs,
                                              (os.getpid(), controller_pid))
    own = (after.own.ru_utime + after.own.ru_stime - before.own.ru_utime - before.own.ru_stime)
    return {
        "controller_cpu_converge_s": round(after.controller.cpu_s - before.controller.cpu_s, 3),
        "benchmark_cpu_converge_s": round(own, 3),  # probes and plugging
        "lab_ovs_cpu_converge_s": ovs_s,
        # Other work on the machine while converging (it shares the CPUs): CPU seconds
        # of processes that are not this benchmark, its controller or its lab's OVS.
        "foreign_cpu_converge_s": others_s,
        "foreign_busiest": others_top,
        "converge_phase_wall_s": round(wall_s, 3),
        "disturbed": others_s > DISTURBED_SHARE * wall_s,
    }


def other_labs(mine: str) -> list[str]:
    root = Path("/run/dove-lab")
    if not root.exists():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.name != mine and (d / "state.json").exists())


def cpu_busy_pct(sample_s: float = 2.0) -> float:
    """How busy the machine's CPUs were over a short sample (all processes, all CPUs)."""
    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle
    total0, idle0 = read()
    time.sleep(sample_s)
    total1, idle1 = read()
    return round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def wait_for_quiet(seconds: float, busy_max: float = 15.0) -> float:
    """Wait up to `seconds` until no other lab is up and the CPUs are (nearly) idle.

    Returns the CPU busy percentage last sampled (recorded with the results: other work on
    this machine shares its CPUs with the controller, OVS and the probes).
    """
    deadline = time.monotonic() + seconds
    noted = False
    while True:
        busy = cpu_busy_pct()
        others = other_labs("")
        if (not others and busy <= busy_max) or time.monotonic() >= deadline:
            if noted:
                say(f"machine {'quiet' if busy <= busy_max and not others else 'still busy'}: "
                    f"CPUs {busy}% busy, other labs: {', '.join(others) or 'none'}")
            return busy
        if not noted:
            say(f"waiting up to {seconds:.0f} s for a quiet machine (CPUs {busy}% busy, "
                f"other labs: {', '.join(others) or 'none'})")
            noted = True
