"""The result: one JSON object (medians, ratio against the target, latency, megaflows,
packet-ins, CPU, per-lab details), and its human summary."""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

from benchmarks.common import command_line, machine_facts
from benchmarks.dataplane.base import PING_COUNT, PING_INTERVAL, RATIO_TARGET
from benchmarks.dataplane.cpu import average_usage
from benchmarks.dataplane.parsing import rtt_summary
from benchmarks.dataplane.side import Side


def _side_report(side: Side) -> dict[str, Any]:
    assert side.parallel is not None
    return {
        "lab": side.lab.name,
        "mbps_per_round": [round(m, 1) for m in side.mbps],
        "retransmits_per_round": [r.retransmits for r in side.runs],
        "iperf3_cpu_sender_pct": round(statistics.fmean(r.cpu_sender_pct for r in side.runs), 1),
        "iperf3_cpu_receiver_pct": round(statistics.fmean(r.cpu_receiver_pct
                                                          for r in side.runs), 1),
        "parallel": {"connections": side.parallel.streams,
                     "mbps": round(side.parallel.mbps, 1),
                     "retransmits": side.parallel.retransmits},
        "megaflows_hv1_samples": side.megaflows_hv1,
        "megaflows_hv2_max": max(side.megaflows_hv2),
    }


def report(args: argparse.Namespace, dove: Side, plain: Side, elapsed: float) -> dict[str, Any]:
    dove_mbps, plain_mbps = statistics.median(dove.mbps), statistics.median(plain.mbps)
    ratio = dove_mbps / plain_mbps if plain_mbps else math.nan
    steady = (None if dove.packet_ins_before is None or dove.packet_ins_after is None
              else dove.packet_ins_after - dove.packet_ins_before)
    return {
        "benchmark": "dataplane",
        "command": command_line(),
        "machine": machine_facts(),
        "settings": {
            "seconds": args.seconds, "connections": args.connections, "rounds": args.rounds,
            "ping": {"count_per_round": PING_COUNT, "interval_s": PING_INTERVAL},
            "path": f"{dove.src.name}@{dove.src.hypervisor} -> "
                    f"{dove.dst.name}@{dove.dst.hypervisor} on {dove.src.network}, "
                    "VXLAN, userspace (netdev) datapath, VM MTU 1450",
            "policy": args.policy,
        },
        "dove_mbps": round(dove_mbps, 1),
        "plain_mbps": round(plain_mbps, 1),
        "ratio": round(ratio, 3),
        "ratio_target": RATIO_TARGET,
        "ratio_met": ratio >= RATIO_TARGET,
        "dove_rtt_ms": rtt_summary(dove.rtts, dove.pings_sent),
        "plain_rtt_ms": rtt_summary(plain.rtts, plain.pings_sent),
        "megaflows": {"dove": max(dove.megaflows_hv1), "plain": max(plain.megaflows_hv1)},
        "packet_ins_steady": steady,
        "packet_ins": {"before": dove.packet_ins_before, "after": dove.packet_ins_after},
        "cpu": {"dove": average_usage(dove.cpu), "plain": average_usage(plain.cpu)},
        "details": {"dove": _side_report(dove), "plain": _side_report(plain)},
        "elapsed_s": round(elapsed, 1),
    }


def _cpu_line(cpu: dict[str, Any]) -> str:
    if not cpu:
        return "not measured"
    m = cpu["machine"]
    parts = [f"machine {m['busy_pct']:.0f}% busy (sys {m['system_pct']:.0f}%, "
             f"softirq {m['softirq_pct']:.0f}%, user {m['user_pct']:.0f}%)"]
    for label, p in cpu["processes"].items():
        top = ", ".join(f"{n} {v:.0f}%" for n, v in p["busiest_threads"].items())
        parts.append(f"{label} {p['pct_of_one_core']:.0f}%" + (f" ({top})" if top else ""))
    return "\n         ".join(parts)


def _per_s(side: dict[str, Any], seconds: float) -> str:
    return f"{statistics.fmean(side['retransmits_per_round']) / seconds:,.0f}"


def _rtt(rtt: dict[str, Any]) -> str:
    return f"{rtt['avg']:.3f}/{rtt['p99']:.3f}/{rtt['mdev']:.3f}"


def human(result: dict[str, Any]) -> str:
    s, m = result["settings"], result["machine"]
    d, p = result["details"]["dove"], result["details"]["plain"]
    dr, pr = result["dove_rtt_ms"], result["plain_rtt_ms"]
    verdict = "meets" if result["ratio_met"] else "BELOW"
    steady = result["packet_ins_steady"]
    lines = [
        f"Data-plane cost: {s['path']}",
        f"  {s['rounds']} rounds x {s['seconds']:g} s iperf3, alternating; medians; "
        f"{'each ovs-vswitchd on a core of its own' if s.get('pinned') else 'not pinned'}",
        "",
        f"{'':28}{'dove':>19}{'plain':>19}",
        f"{'TCP throughput (Mbit/s)':28}{result['dove_mbps']:>19.0f}{result['plain_mbps']:>19.0f}"
        f"   ratio {result['ratio']:.3f} ({verdict} target >= {result['ratio_target']})",
        f"{'  per round':28}{'/'.join(f'{v:.0f}' for v in d['mbps_per_round']):>19}"
        f"{'/'.join(f'{v:.0f}' for v in p['mbps_per_round']):>19}",
        f"{'  TCP retransmits per s':28}{_per_s(d, s['seconds']):>19}{_per_s(p, s['seconds']):>19}",
        f"{'ping avg / p99 / mdev (ms)':28}{_rtt(dr):>19}{_rtt(pr):>19}",
        f"{'megaflows hv1, -P ' + str(s['connections']):28}"
        f"{result['megaflows']['dove']:>19}{result['megaflows']['plain']:>19}",
        f"{'  Mbit/s with -P ' + str(s['connections']):28}"
        f"{d['parallel']['mbps']:>19.0f}{p['parallel']['mbps']:>19.0f}",
        f"{'packet-ins once converged':28}{'-' if steady is None else steady:>19}{'n/a':>19}",
        "",
        "CPU during the single-stream runs (process figures: % of one core):",
        f"  dove:  {_cpu_line(result['cpu']['dove'])}",
        f"  plain: {_cpu_line(result['cpu']['plain'])}",
        "",
        f"machine: {m['cpu_model']}, {m['nproc']} CPUs, kernel {m['kernel']}, "
        f"OVS {m['ovs_version']}, Python {m['python_version']}",
        f"command: {result['command']}   ({result['elapsed_s']:.0f} s)",
    ]
    bg = result.get("background")
    if bg and not bg["quiet"]:
        lines.append(f"WARNING: the machine was not quiet before the run (CPUs "
                     f"{bg['busy_pct_before']:.0f}% busy, other labs: "
                     f"{', '.join(bg['other_labs_before']) or 'none'})")
    return "\n".join(lines)
