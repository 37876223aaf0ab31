"""One run: both labs up (always taken down again), each measured in alternating rounds,
then the report."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from benchmarks.common import other_labs, require, running_lab
from benchmarks.dataplane.base import DST, PING_COUNT, ROUTED_DST, TOPOLOGY_YAML, Progress
from benchmarks.dataplane.pinning import pin_datapaths
from benchmarks.dataplane.quiet import background
from benchmarks.dataplane.report import report
from benchmarks.dataplane.side import make_side, packet_ins, wait_in_sync
from benchmarks.dataplane.traffic import (
    iperf_server,
    measure_connection_rate,
    measure_megaflows,
    measure_ping,
    measure_throughput,
    warm_up,
)
from dove_lab.topology import Topology, load_topology
from ryu_dove.policy import Policy, load_policy

CONNECT_SECONDS = 5.0  # how long the connection-rate client runs per side
TOOLS = {"iperf3": "iperf3", "ping": "iputils-ping", "ss": "iproute2", "ip": "iproute2",
         "ovs-appctl": "openvswitch-switch"}


def load_lab_config(policy_path: str) -> tuple[Policy, Topology]:
    """The policy and the two-VM topology, checked by the lab's own topology loader."""
    policy = load_policy([policy_path])
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="dataplane-topology-") as f:
        f.write(TOPOLOGY_YAML)
        f.flush()
        topology = load_topology(f.name, policy)
    return policy, topology


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    require(TOOLS)
    policy, topology = load_lab_config(args.policy)
    load = background(args.wait_quiet, progress)
    started = time.time()
    with ExitStack() as stack:
        progress("bringing up the DOVE lab (controller, policies/example.yaml)")
        dove_lab = stack.enter_context(running_lab("bd", topology, [args.policy], policy))
        progress(f"  lab {dove_lab.name} up; bringing up the plain-OVS baseline lab")
        plain_lab = stack.enter_context(
            running_lab("bp", topology, [args.policy], policy, controller=False))
        progress(f"  lab {plain_lab.name} up")
        routed = args.mode == "routed"
        dove = make_side("dove", dove_lab, ROUTED_DST if routed else DST)
        plain = make_side("plain", plain_lab)
        sides = [dove, plain, *([make_side("l2", dove_lab)] if routed else [])]
        wait_in_sync(dove_lab)
        pinned = pin_datapaths(sides) if args.pin else None
        progress(f"datapaths pinned: {pinned}" if pinned else "datapaths not pinned")
        dove.packet_ins_before = packet_ins(dove_lab)
        for side in sides:
            warm_up(side)
            rate = measure_connection_rate(side, CONNECT_SECONDS)
            progress(f"{side.label:5}: {rate:.0f} new TCP connections/s")
        for side in sides:
            stack.enter_context(iperf_server(side.dst))
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                measure_ping(side)
                result = measure_throughput(side, args.seconds)
                progress(f"round {r + 1}/{args.rounds} {side.label:5}: {result.mbps:7.0f} Mbit/s "
                         f"({result.retransmits} retransmits), ping avg "
                         f"{statistics.fmean(side.rtts[-PING_COUNT:]):.3f} ms")
        for side in (dove, plain):
            measure_megaflows(side, args.seconds, args.connections)
            assert side.parallel is not None
            progress(f"{side.label:5} -P {args.connections}: {side.parallel.mbps:.0f} Mbit/s, "
                     f"megaflows on hv1 max {max(side.megaflows_hv1)}")
        dove.packet_ins_after = packet_ins(dove_lab)
        load["other_labs_after"] = other_labs([dove_lab.name, plain_lab.name])
        progress("taking the labs down")
    out = report(args, dove, plain, time.time() - started)
    out["background"] = load
    out["settings"]["pinned"] = pinned
    out["mode"] = args.mode
    out["connections_per_s"] = {side.label: round(side.connections_per_s or 0.0)
                                for side in sides}
    if routed:
        out["routed_mbps"] = out["dove_mbps"]
        out["l2_mbps"] = round(statistics.median(sides[2].mbps), 1)
        out["l2_ratio"] = round(out["l2_mbps"] / out["plain_mbps"], 3)
    return out
