"""The phases of a run, in order: os-ken's own encoding rate (the baseline), ingest, cold
start, then bindings one at a time, paced and in a burst. Each phase hands back what the
fleet saw and the controller's CPU over it."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.scale.controller import engine_barrier, wait_until
from benchmarks.scale.fleet import FleetClient
from benchmarks.scale.meters import CpuMeter
from benchmarks.scale.world import Binding, Hypervisors, World, binding, mac_of


def osken_encode_per_s(seconds: float = 1.0, bundled: bool = False) -> float:
    """Typical L2 flow-mods os-ken builds and serializes per second (optionally in a bundle)."""
    from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

    dp = ofproto_protocol.ProtocolDesc(version=ofproto_v1_3.OFP_VERSION)
    parser, ofp = dp.ofproto_parser, dp.ofproto
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and done < 10_000_000:
        for i in range(200):
            mac = mac_of(i, done & 0xFFFF)
            actions = [parser.OFPActionSetField(tunnel_id=5001),
                       parser.OFPActionSetField(eth_dst=mac), parser.OFPActionOutput(7)]
            msg = parser.OFPFlowMod(
                dp, cookie=0xD0 << 56 | done + i, table_id=30, priority=100,
                command=ofp.OFPFC_ADD, match=parser.OFPMatch(in_port=3, eth_dst=mac, reg0=5001),
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)])
            if bundled:
                msg = parser.ONFBundleAddMsg(dp, 1, ofp.ONF_BF_ATOMIC, msg, [])
            msg.set_xid(i)
            msg.serialize()
        done += 200
    return done / (time.perf_counter() - start)


@dataclass
class Phase:
    """What the fleet saw in one phase, with the controller's CPU over it."""

    switches: list[dict[str, Any]]
    macs: dict[str, list[float]]
    cpu_s: float
    engine_s: float
    waited: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flow_mods(self) -> int:
        return sum(s["adds"] + s["deletes"] for s in self.switches)

    @property
    def last_commit(self) -> float:
        return max((c for s in self.switches for c in s["commits"]), default=0.0)

    @property
    def touched(self) -> int:
        return sum(1 for s in self.switches if s["adds"] or s["deletes"])


@dataclass
class Bench:
    args: argparse.Namespace
    world: World
    hvs: Hypervisors
    engine: Any
    fleet: FleetClient
    cpu: CpuMeter

    def finish_phase(self, mark: tuple[float, float], **wait: Any) -> Phase:
        waited = self.fleet.call("wait", self.args.timeout + 30, timeout=self.args.timeout,
                                 **wait)
        switches, macs = self.fleet.report(60)
        return Phase(switches, macs, *self.cpu.since(mark), waited)


def ingest(b: Bench) -> dict[str, Any]:
    cpu0, t0 = b.cpu.controller_s(), time.monotonic()
    for binding_ in b.hvs.plan(b.world.endpoints):
        b.hvs.apply(binding_)
    from ryu_dove.events import OvsdbReport

    for i in range(b.world.switches):
        b.engine.post(OvsdbReport(b.hvs.report(i)))
    engine_barrier(b.engine, b.args.timeout)
    wait_until(lambda: b.engine.released, b.args.timeout, "the controller to synchronise")
    return {"ingest_s": round(time.monotonic() - t0, 2),
            "ingest_cpu_s": round(b.cpu.controller_s() - cpu0, 2)}


def cold_start(b: Bench) -> Phase:
    initial = [binding(b.world, g) for g in range(b.world.endpoints)]
    b.fleet.call("track", 60, macs=b.hvs.expected_switches(initial))
    mark = b.cpu.mark()
    connecting = b.fleet.call("connect", 60, within=b.args.timeout)
    phase = b.finish_phase(mark, all_committed=True)
    phase.extra["t0"] = connecting["t0"]
    return phase


def events(b: Bench, count: int, rate: float | None) -> tuple[Phase, list[float], list[Binding]]:
    """Post `count` bindings, paced at `rate` per second (None: as fast as possible)."""
    from ryu_dove.events import OvsdbReport

    planned = b.hvs.plan(count)
    expected = b.hvs.expected_switches(planned)
    b.fleet.call("track", 60, macs=expected)
    mark, posted = b.cpu.mark(), []
    start = time.monotonic()
    for i, ev in enumerate(planned):
        if rate:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        b.hvs.apply(ev)
        report = b.hvs.report(ev.hv)
        posted.append(time.monotonic())
        b.engine.post(OvsdbReport(report))
    phase = b.finish_phase(mark)
    phase.extra["hosting"] = [expected[ev.mac] for ev in planned]
    return phase, posted, planned


def isolated(b: Bench, count: int) -> tuple[Phase, list[float], list[Binding]]:
    """One binding at a time, each waited for: latency and flow-mods without queueing."""
    from ryu_dove.events import OvsdbReport

    planned = b.hvs.plan(count)
    mark, posted, macs = b.cpu.mark(), [], {}
    waited = {"done": True, "missing_pairs": 0}
    for ev in planned:
        b.fleet.call("track", 60, macs=b.hvs.expected_switches([ev]))
        b.hvs.apply(ev)
        report = b.hvs.report(ev.hv)
        posted.append(time.monotonic())
        b.engine.post(OvsdbReport(report))
        answer = b.fleet.call("wait", b.args.timeout + 30, timeout=b.args.timeout)
        waited["done"] = waited["done"] and answer["done"]
        waited["missing_pairs"] += answer["missing_pairs"]
        macs.update(b.fleet.call("macs", 60)["macs"])
    switches, _ = b.fleet.report(60)
    phase = Phase(switches, macs, *b.cpu.since(mark), waited)
    phase.extra["hosting"] = [b.hvs.expected_switches([ev])[ev.mac] for ev in planned]
    return phase, posted, planned
