"""What every part of the data-plane benchmark shares: the two-VM lab it measures, the
settings of its measurements, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable

NETWORK = "acme/web"
TOPOLOGY_YAML = """\
hypervisors: [hv1, hv2]
vms:
  - {name: vm1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: vm2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
  - {name: vm3, hypervisor: hv2, network: acme/db, ip: 198.51.100.70}
"""
SRC, DST = "vm1", "vm2"  # the measured direction: hv1 -> hv2, in one network
ROUTED_DST = "vm3"  # --mode routed: web -> db, through the example's allow rule (TCP 5432)
PING_COUNT = 50
PING_INTERVAL = 0.05
RATIO_TARGET = 0.95
QUIET_BUSY_PCT = 10.0  # throughput here is CPU-bound: anything else running skews it
MAX_CONNECTIONS = 128  # iperf3's own limit for -P

Progress = Callable[[str], None]
