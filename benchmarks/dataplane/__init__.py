"""Data-plane cost: the DOVE pipeline against plain OVS, VM to VM across two hypervisors.

    python -m benchmarks.dataplane [--json] [--seconds 10] [--connections 100] [--rounds 3]
                                   [--wait-quiet S]

Two labs side by side (distinct names), each with vm1 on hv1 and vm2 on hv2 in acme/web of
policies/example.yaml: one runs the controller's pipeline, the other is the lab's
--no-controller baseline (standalone OVS, NORMAL action, full VXLAN mesh). Both labs are
taken down at the end, also on failure, Ctrl-C or SIGTERM.

Measured, each `--rounds` times in alternating order (dove, plain, then plain, dove, ...) so
drift of the machine hits both alike:
- TCP throughput: one iperf3 stream vm1 -> vm2 for `--seconds` (receiver's figure);
  `ratio` = median dove / median plain.
- Latency: 50 pings at 0.05 s after a warm-up ping (avg, p50, p99, mdev over all rounds).
- CPU over each throughput run: the whole machine (/proc/stat) and each hypervisor's
  ovs-vswitchd per thread (/proc/PID/task), plus the controller's own process.
Then once per lab:
- Megaflows: datapath flows on hv1 (`dpctl/dump-flows`) sampled while `iperf3 -P N` runs.
- packet_ins_steady: the controller's `packet_ins` (`/v1/controller`) once the lab is in
  sync, before any VM traffic, against after all of it. The pipeline never punts: 0.

Modules: `cli` (options, printing), `run` (both labs, the rounds), `traffic` (iperf3 server,
ping, throughput, megaflows), `side` (one lab under test, its controller's API), `quiet`
(other load on the machine), `cpu` (/proc accounting), `parsing` (ping and iperf3 output,
statistics), `report` (JSON and the human summary), `base`.
"""

# Names the tests use (tests/unit/test_benchmarks_cli.py).
from benchmarks.dataplane.cli import main, parse_args
from benchmarks.dataplane.cpu import CLK_TCK, CpuSnapshot, average_usage, cpu_usage
from benchmarks.dataplane.parsing import (
    count_megaflows,
    parse_iperf,
    parse_ping,
    percentile,
    rtt_summary,
)
from benchmarks.dataplane.report import human, report
from benchmarks.dataplane.side import Side

__all__ = ["CLK_TCK", "CpuSnapshot", "Side", "average_usage", "count_megaflows", "cpu_usage",
           "human", "main", "parse_args", "parse_iperf", "parse_ping", "percentile", "report",
           "rtt_summary"]
