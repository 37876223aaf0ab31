"""Pure parsing and statistics (unit-tested): ping and iperf3 output, megaflow dumps,
percentiles and round-trip summaries."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.common import BenchmarkError


def parse_ping(output: str) -> list[float]:
    """Round-trip times (ms) of every echo reply in `ping -n` output."""
    rtts = []
    for line in output.splitlines():
        if " bytes from " in line and "time=" in line:
            rtts.append(float(line.split("time=", 1)[1].split()[0]))
    return rtts


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rtt_summary(rtts: list[float], sent: int) -> dict[str, Any]:
    mean = statistics.fmean(rtts)
    return {
        "avg": round(mean, 3),
        "p50": round(percentile(rtts, 50), 3),
        "p99": round(percentile(rtts, 99), 3),
        "min": round(min(rtts), 3),
        "max": round(max(rtts), 3),
        "mdev": round(statistics.pstdev(rtts), 3),  # what ping calls mdev
        "echoes": sent,
        "loss_pct": round(100 * (sent - len(rtts)) / sent, 1) if sent else None,
    }


@dataclass(frozen=True)
class IperfResult:
    mbps: float  # received by the server: the goodput
    sent_mbps: float
    retransmits: int
    cpu_sender_pct: float
    cpu_receiver_pct: float
    streams: int


def parse_iperf(text: str) -> IperfResult:
    """iperf3 -J output of a TCP client run; raises BenchmarkError when the run failed."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BenchmarkError(f"iperf3 gave no JSON: {text[:300]!r}") from exc
    if data.get("error"):
        raise BenchmarkError(f"iperf3: {data['error']}")
    try:
        end = data["end"]
        cpu = end.get("cpu_utilization_percent", {})
        return IperfResult(
            mbps=end["sum_received"]["bits_per_second"] / 1e6,
            sent_mbps=end["sum_sent"]["bits_per_second"] / 1e6,
            retransmits=int(end["sum_sent"].get("retransmits", 0)),
            cpu_sender_pct=float(cpu.get("host_total", math.nan)),
            cpu_receiver_pct=float(cpu.get("remote_total", math.nan)),
            streams=len(end.get("streams", [])))
    except (KeyError, TypeError) as exc:
        raise BenchmarkError(f"iperf3 JSON without the end sums: {exc}") from exc


def count_megaflows(dump: str) -> int:
    """Datapath flows in `ovs-appctl dpctl/dump-flows` output (header lines not counted)."""
    return sum(1 for line in dump.splitlines() if "actions:" in line)
