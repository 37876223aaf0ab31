"""The engine alone at scale: the same world as benchmarks.scale, without sockets.

    python -m benchmarks.engine_alone --switches N [--endpoints E] [--tenants T] [--events K]
        [--json]

Why: benchmarks.scale measures the whole controller process (sockets, syscalls, framing,
the other threads). This one drives the engine directly (reports posted as the OVSDB
manager posts them; switches that take bytes and answer with an empty flow table and a
bundle commit, in the engine's own thread), so the difference between the two is what the
OpenFlow transport costs (with os-ken's threads it was ~2x; now ~20%). Figures:
- cold_start_cpu_s / flowmods_per_cpu_s: every switch connects and is programmed;
- event_ms p50/p99/max and events_per_s: one new VM port at a time, from the report to the
  last bundle handed to its switches, with every commit answered;
- osken_encode_per_s: the framework baseline, as in benchmarks.scale.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import command_line, emit, machine_facts
from benchmarks.scale import (
    Hypervisors,
    World,
    add_world_options,
    osken_encode_per_s,
    percentile,
    positive,
    world_defaults,
    world_problem,
)


class NullSwitch:
    """A datapath that takes the bytes sent to it (counting them) and answers nothing."""

    def __init__(self, dpid: int) -> None:
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

        self.id = dpid
        self.identity = None  # no certificate: a plain connection
        self.ofproto, self.ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
        self.bytes = 0

    def close(self, reason: str) -> None:
        pass

    def send(self, buf: bytes) -> None:
        self.bytes += len(buf)


def build_engine(world: World, hvs: Hypervisors, workdir: Path) -> Any:
    from ryu_dove.directory import MemoryDirectory
    from ryu_dove.engine.loop import Engine, Timing
    from ryu_dove.policy import load_policy

    policy = workdir / "scale-policy.yaml"
    policy.write_text(world.policy_yaml())
    return Engine(load_policy([str(policy)]), MemoryDirectory(), lambda *args: None,
                  Timing(min_grace_s=0.0))


def answer(engine: Any) -> None:
    """Deliver what every switch waits for: its (empty) flow table, or the end of its update."""
    from ryu_dove.events import MessageKind, SwitchMessage
    from ryu_dove.openflow import replies as of

    answers = []
    for dpid, rec in engine.reconcilers.items():
        if rec.awaiting is not None:
            kind, xid = rec.awaiting
            reply = (of.FlowStatsReply(rec.dp, xid, False, ()) if kind is MessageKind.FLOW_STATS
                     else of.BundleReply(rec.dp, xid, 0, 0) if kind is MessageKind.BUNDLE
                     else of.BarrierReply(rec.dp, xid))
            answers.append(SwitchMessage(dpid, kind, reply))
    engine.handle_batch(answers)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from ryu_dove.events import OvsdbReport, SwitchUp

    world = World(args.switches, args.endpoints, args.tenants, min(args.spread, args.switches),
                  args.networks, args.rules)
    encode = round(osken_encode_per_s())
    hvs = Hypervisors(world)
    for b in hvs.plan(world.endpoints):
        hvs.apply(b)
    engine = build_engine(world, hvs, workdir)
    t0 = time.process_time()
    for i in range(world.switches):
        engine.handle_batch([OvsdbReport(hvs.report(i))])
    ingest = time.process_time() - t0
    switches = [NullSwitch(i + 1) for i in range(world.switches)]
    t0 = time.process_time()
    engine.handle_batch([SwitchUp(sw) for sw in switches])
    answer(engine)  # the flow tables
    answer(engine)  # the first bundles
    cold = time.process_time() - t0
    flow_mods = sum(rec.stats.flow_mods for rec in engine.reconcilers.values())
    times = []
    for b in hvs.plan(args.events):
        hvs.apply(b)
        report = OvsdbReport(hvs.report(b.hv))  # built outside the timing: the agent's work
        t0 = time.perf_counter()
        engine.handle_batch([report])
        answer(engine)
        times.append(time.perf_counter() - t0)
    in_sync = sum(1 for rec in engine.reconcilers.values() if rec.in_sync)
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    return {
        "benchmark": "engine_alone", "switches": world.switches, "endpoints": world.endpoints,
        "tenants": world.tenants, "spread": world.spread,
        "networks": world.networks, "rules": world.rules, "events": args.events,
        "ingest_cpu_s": round(ingest, 2),
        "cold_start_cpu_s": round(cold, 2), "flow_mods": flow_mods,
        "flowmods_per_cpu_s": round(flow_mods / cold) if cold > 0 else None,
        "flowmods_x_encode": round(flow_mods / cold / encode, 1) if cold > 0 else None,
        "event_ms": {"p50": round(1000 * (p50 or 0), 2), "p99": round(1000 * (p99 or 0), 2),
                     "max": round(1000 * max(times), 2)},
        "events_per_s": round(len(times) / sum(times)) if times else None,
        "switches_in_sync": in_sync, "osken_encode_per_s": encode,
        "gc_collections": [s["collections"] for s in gc.get_stats()],
        "machine": machine_facts(), "command": command_line(),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine_alone",
                                description=__doc__.splitlines()[0])
    add_world_options(p, switches=1000)
    p.add_argument("--events", type=positive, default=500, help="events, one at a time (500)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    world_defaults(args)
    problem = world_problem(args, -(-(args.endpoints + args.events) // args.tenants))
    if problem:
        print(f"engine_alone: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dove-engine-") as tmp:
        result = run(args, Path(tmp))
    emit(result, args.json, ("switches", "cold_start_cpu_s", "flowmods_per_cpu_s",
                             "flowmods_x_encode", "event_ms", "events_per_s",
                             "osken_encode_per_s", "switches_in_sync"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
