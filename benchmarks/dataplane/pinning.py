"""Each hypervisor's ovs-vswitchd on a core of its own, in both labs alike.

On real hosts every hypervisor's datapath has its own CPUs. Here both hypervisors share
the machine's cores, and the scheduler sometimes runs both datapaths on one core for a
while: the runs spread by about 10%, more than the difference measured (docs/benchmarks.md).
Pinning hv1's to core 0 and hv2's to core 1 gives each hypervisor its core, as separate
hosts would; the VMs, iperf3 and the kernel's softirqs stay free to run anywhere.
"""

from __future__ import annotations

import os

from benchmarks.dataplane.side import Side


def pin_datapaths(sides: list[Side]) -> dict[str, int] | None:
    """Pin every thread of each side's ovs-vswitchd@hvN to core N-1; None (nothing done)
    on a machine with fewer than two cores usable."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    pinned: dict[str, int] = {}
    for side in sides:
        for label, pid in side.cpu_pids.items():
            if not label.startswith("ovs-vswitchd@hv"):
                continue
            core = cores[(int(label.removeprefix("ovs-vswitchd@hv")) - 1) % len(cores)]
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), {core})
            pinned[f"{side.label}:{label}"] = core
    return pinned
