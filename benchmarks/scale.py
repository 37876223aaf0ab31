"""Controller at scale: the real DoveController against a fleet of fake OpenFlow switches.

    python -m benchmarks.scale --switches N --endpoints E --tenants T [--spread S]
        [--isolated K1] [--events K] [--rate R] [--timeout S] [--workdir DIR] [--json]

Why: the targets for 1,000 hypervisors (docs/benchmarks.md, "Controller at scale") are about
the controller alone: how fast the engine, compiler and reconcilers turn bindings into
flow-mods, how long a cold start takes, how much memory it needs. Neither OVS nor a lab can
show that at 1,000 switches on one machine, so the switches are fakes that only answer and
count (benchmarks/fake_fleet.py, one asyncio process), and the controller is the real one.

How:
- The controller runs in this process, started as dove-controller starts it
  (ryu_dove.cli.controller's parser, option mapping, logging and the same AppManager
  sequence), OpenFlow/OVSDB/API on free 127.0.0.1 ports, logging at INFO to a temp file.
  Its CPU is this process's minus the benchmark's main thread (the feeder); its memory is
  this process's peak RSS (VmHWM).
- Bindings are fed as the OVSDB manager feeds them: a full HypervisorReport snapshot of one
  hypervisor per change, with its VM ports (the contract's external_ids) and its owned
  tunnel ports to every other hypervisor, posted with `engine.post(OvsdbReport(...))`.
- The synthetic world: T tenants, each one network (VNIs unique, all on 198.51.100.0/24, a
  documentation range: tenants may overlap); endpoint g belongs to tenant g % T and sits on
  one of the S (`--spread`) hypervisors of that tenant, so a tenant's work touches S
  switches, not N.

Phases and figures:
1. osken_encode_per_s: os-ken builds and serializes a typical L2 flow-mod (match in_port,
   eth_dst, reg0; set_field tunnel_id, set_field eth_dst, output), before the controller
   starts: the framework's own ceiling on this machine in this run.
2. ingest: the N initial reports (E endpoints) are posted and applied.
3. cold start: all N switches connect at once to the synchronised controller; until every
   switch committed and every endpoint's unicast flow reached every hypervisor hosting its
   tenant. cold_start_s (to the last COMMIT), flowmods_per_s (first flow-mod to last
   COMMIT), flows_per_switch.
4. isolated events: K1 new VM ports, each posted once the previous one is everywhere: the
   latency and the flow-mods of one binding with nothing queued.
5. paced events: K new VM ports at `--rate` per second; p50_ms/p99_ms from the post of a
   binding to the last flow-mod with eth_dst=its MAC on any switch (p99_commit_ms: to the
   COMMIT of that bundle), flowmods_per_event.
6. burst events: K more as fast as they can be posted; events_per_s = K / (last flow-mod -
   first post): the rate the controller keeps up with. The engine takes whatever is queued
   as one batch and recompiles each touched switch once per batch, so how the burst splits
   into batches moves this figure by up to 2x between runs; cpu_ms_per_event says more.
Wall-clock figures move with other load on the machine (loadavg_1m is recorded); cpu_s and
flowmods_per_cpu_s much less.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import ipaddress
import json
import math
import os
import queue
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks.common import command_line, machine_facts, print_json
from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo

REPO = Path(__file__).resolve().parents[1]
SUBNET = ipaddress.ip_network("198.51.100.0/24")  # every tenant's network (they may overlap)
TEP_BASE = int(ipaddress.ip_address("100.64.0.0"))
VNI_BASE = 10000
TUNNEL_OFPORT_BASE = 10000
TARGETS = {"switches": 1000, "flowmods_x_encode": 10, "events_per_s": 500, "p99_ms": 100,
           "cold_start_s": 60, "rss_mb": 2048}


class BenchmarkFailed(RuntimeError):
    """The run could not measure what it should; the message says why."""


# --- the synthetic world ----------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    switches: int
    endpoints: int
    tenants: int
    spread: int  # hypervisors per tenant

    def tenant_name(self, t: int) -> str:
        return f"t{t:04d}"

    def placement(self, g: int) -> tuple[int, int, int]:
        """Endpoint number g -> (tenant, index in tenant, hypervisor index)."""
        t, k = g % self.tenants, g // self.tenants
        return t, k, (t * self.switches // self.tenants + k % self.spread) % self.switches

    def policy_yaml(self) -> str:
        lines = ["tenants:"]
        for t in range(self.tenants):
            lines += [f"  {self.tenant_name(t)}:", "    networks:",
                      f"      net: {{vni: {VNI_BASE + t}, subnet: {SUBNET}}}"]
        return "\n".join(lines) + "\n"


def hv_name(i: int) -> str:
    return f"hv{i:04d}"


def tep_ip(i: int) -> str:
    return str(ipaddress.ip_address(TEP_BASE + 1 + i))


def mac_of(t: int, k: int) -> str:
    return f"02:00:{t >> 8 & 255:02x}:{t & 255:02x}:{k >> 8 & 255:02x}:{k & 255:02x}"


@dataclass(frozen=True)
class Binding:
    """One endpoint binding: a VM port that appears on a hypervisor."""

    hv: int
    tenant: int
    mac: str
    vm: str  # port name
    ids: tuple[tuple[str, str], ...]


def binding(world: World, g: int) -> Binding:
    t, k, hv = world.placement(g)
    mac = mac_of(t, k)
    ids = {contract.IFACE_ID: f"ep-{t}-{k}", contract.ATTACHED_MAC: mac,
           contract.NETWORK: f"{world.tenant_name(t)}/net",
           contract.IPS: str(SUBNET.network_address + 2 + k)}
    return Binding(hv, t, mac, f"vif-{t:04d}-{k:05d}", tuple(sorted(ids.items())))


def tunnel_template(remote: int) -> PortInfo:
    """The tunnel port to `remote` as every hypervisor has it, but for its ofport."""
    from ryu_dove.tunnel_ids import tunnel_port_name

    ids = {contract.OWNER: contract.OWNER_VALUE, contract.REMOTE: hv_name(remote)}
    return PortInfo(tunnel_port_name(tep_ip(remote)), None, "vxlan", tuple(sorted(ids.items())),
                    (("key", "flow"), ("remote_ip", tep_ip(remote))), None)


def tunnel_ports(hv: int, templates: Sequence[PortInfo]) -> tuple[PortInfo, ...]:
    """hv's tunnel ports, sorted by name. OVS numbers ports in creation order, so the port to
    a given remote has a different ofport on each hypervisor (and the flows using it differ)."""
    n = len(templates)
    return tuple(PortInfo(t.name, TUNNEL_OFPORT_BASE + (j - hv) % n, t.type, t.external_ids,
                          t.options, None) for j, t in enumerate(templates) if j != hv)


class Hypervisors:
    """What every hypervisor's OVSDB says, kept as the agent keeps it: full snapshots."""

    def __init__(self, world: World) -> None:
        self.world = world
        n = world.switches
        templates = [tunnel_template(j) for j in range(n)]
        self._tunnels = [tunnel_ports(i, templates) for i in range(n)]  # "dv-" sorts first
        self._vms: list[list[PortInfo]] = [[] for _ in range(n)]
        self.hosting: list[set[int]] = [set() for _ in range(world.tenants)]
        self.next_g = 0

    def plan(self, count: int) -> list[Binding]:
        """The next `count` bindings (not applied yet)."""
        planned = [binding(self.world, g) for g in range(self.next_g, self.next_g + count)]
        self.next_g += count
        return planned

    def expected_switches(self, planned: Sequence[Binding]) -> dict[str, int]:
        """Per MAC: how many switches get its unicast flow once all of `planned` is applied."""
        hosts = [set(h) for h in self.hosting]
        for b in planned:
            hosts[b.tenant].add(b.hv)
        return {b.mac: len(hosts[b.tenant]) for b in planned}

    def apply(self, b: Binding) -> None:
        vms = self._vms[b.hv]
        port = PortInfo(b.vm, len(vms) + 1, "", b.ids, (), None)
        bisect.insort(vms, port, key=lambda p: p.name)
        self.hosting[b.tenant].add(b.hv)

    def report(self, i: int) -> HypervisorReport:
        return HypervisorReport(f"bench:{hv_name(i)}", hv_name(i), tep_ip(i), "netdev", i + 1,
                                (*self._tunnels[i], *self._vms[i]))


# --- the controller, in this process ----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_controller(policy: Path, log_file: Path, ofp_port: int) -> Any:
    """Start ryu_dove.app as dove-controller does; return the DoveController instance."""
    from ryu_dove.cli import controller as cli

    args = cli.build_parser().parse_args([
        "--policy", str(policy), "--listen", "127.0.0.1", "--ofp-port", str(ofp_port),
        "--ovsdb-port", str(free_port()), "--api-port", str(free_port()),
        "--startup-grace", "0.5", "--log-file", str(log_file)])
    cli._setup_logging(args)
    try:
        cli.start_apps(args, timeout=60)
    except RuntimeError as exc:
        raise BenchmarkFailed(f"controller did not start: {exc}") from exc
    from os_ken.base import app_manager

    app = app_manager.lookup_service_brick("DoveController")
    if app is None:
        raise BenchmarkFailed("controller did not start: no DoveController app")
    return app


def engine_barrier(engine: Any, timeout: float) -> None:
    """Return once the engine applied everything posted before, its recompute included.

    The engine's one observable, build-nothing event is a packet-in (it only counts it).
    The first sentinel is handled in some batch; a second one posted after that can only be
    in a later batch, which starts after the first batch's recompute.
    """
    from ryu_dove.events import MessageKind, SwitchMessage

    deadline = time.monotonic() + timeout
    for _ in range(2):
        before = engine.packet_ins
        engine.post(SwitchMessage(0, MessageKind.PACKET_IN, None))
        while engine.packet_ins == before:
            if time.monotonic() > deadline:
                raise BenchmarkFailed(f"engine busy for more than {timeout:.0f} s")
            time.sleep(0.005)


class GcMeter:
    """Wall time spent in the garbage collector, per generation (all threads of this process)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.count[info["generation"]] += 1

    def figures(self) -> dict[str, Any]:
        return {"gc_s": [round(s, 2) for s in self.seconds], "gc_collections": self.count}


class CpuMeter:
    """Controller CPU: this process's CPU time minus the benchmark's main thread's; and the
    engine's own account of the wall time it spent applying batches (the rest of the CPU is
    os-ken's app threads, the OVSDB manager, the API and the garbage collector)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.process0, self.main0 = time.process_time(), time.thread_time()

    def controller_s(self) -> float:
        return (time.process_time() - self.process0) - (time.thread_time() - self.main0)

    def mark(self) -> tuple[float, float]:
        return self.controller_s(), self.engine.stats.busy_s

    def since(self, mark: tuple[float, float]) -> tuple[float, float]:
        cpu, engine = self.mark()
        return cpu - mark[0], engine - mark[1]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


# --- the fleet, in its own process ------------------------------------------------------------

class FleetClient:
    """benchmarks/fake_fleet.py over pipes: a command out, JSON lines back."""

    def __init__(self, port: int, switches: int, stderr: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_fleet", "--port", str(port),
             "--switches", str(switches)], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="fleet-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def call(self, op: str, patience: float, **args: Any) -> dict[str, Any]:
        """Send a command; its answer, waiting at most `patience` seconds."""
        self.send(op, **args)
        return self.expect(patience)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def expect(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchmarkFailed(f"fake fleet silent for {timeout:.0f} s") from None
        if line is None:
            raise BenchmarkFailed(f"fake fleet exited ({self.proc.poll()}); see its stderr")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def report(self, timeout: float) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
        """Per-switch lines and per-MAC [last add, last commit, switches] of this phase."""
        self.send("report")
        switches: list[dict[str, Any]] = []
        macs: dict[str, list[float]] = {}
        while (msg := self.expect(timeout))["op"] != "reported":
            if msg["op"] == "switch":
                switches.append(msg)
            elif msg["op"] == "macs":
                macs = msg["macs"]
        return switches, macs

    def cpu_s(self) -> float:
        """The fleet process's CPU time so far (to show it was not the bottleneck)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)


# --- measurements ---------------------------------------------------------------------------

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


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


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


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"timed out waiting for {what}")
        time.sleep(0.01)


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


# --- figures --------------------------------------------------------------------------------

def cold_figures(p: Phase) -> dict[str, Any]:
    t0 = p.extra["t0"]
    firsts = [s["first_flow_mod"] for s in p.switches if s["first_flow_mod"]]
    program_s = p.last_commit - min(firsts) if firsts else 0.0
    handshakes = [s["features"] - t0 for s in p.switches if "features" in s]
    return {
        "cold_start_s": round(p.last_commit - t0, 2) if p.last_commit else None,
        "flowmods_per_s": round(p.flow_mods / program_s) if program_s > 0 else None,
        "flowmods_per_cpu_s": round(p.flow_mods / p.cpu_s) if p.cpu_s > 0 else None,
        "flow_mods": p.flow_mods,
        "flows_per_switch": round(sum(s["installed"] for s in p.switches) / len(p.switches), 1),
        "handshakes_p50_s": round(percentile(handshakes, 0.5) or 0, 2),
        "handshakes_done_s": round(max(handshakes), 2) if handshakes else None,
        "switches_connected": len(handshakes),
        "connect_attempts_max": max(s["attempts"] for s in p.switches),
        "switches_that_reconnected": sum(1 for s in p.switches if s["attempts"] > 1),
        "switches_committed": sum(1 for s in p.switches if s["commits"]),
        "bundles": sum(len(s["commits"]) for s in p.switches),
        "complete": p.waited["done"],
        "missing_pairs": p.waited["missing_pairs"],
        "cpu_s": round(p.cpu_s, 2),
        "engine_s": round(p.engine_s, 2),
    }


def event_figures(p: Phase, posted: list[float], planned: list[Binding]) -> dict[str, Any]:
    adds = [p.macs[ev.mac][0] - t for ev, t in zip(planned, posted, strict=True)
            if p.macs[ev.mac][0] > 0]
    commits = [p.macs[ev.mac][1] - t for ev, t in zip(planned, posted, strict=True)
               if p.macs[ev.mac][1] > 0]
    last = max((p.macs[ev.mac][0] for ev in planned), default=0.0)
    elapsed = last - posted[0] if posted and last else 0.0
    hosting = sum(p.extra["hosting"]) / len(planned)
    per_event = p.flow_mods / len(planned)
    return {
        "events": len(planned),
        "events_per_s": round(len(planned) / elapsed, 1) if elapsed > 0 else None,
        "post_s": round(posted[-1] - posted[0], 3),
        "p50_ms": ms(percentile(adds, 0.5)), "p99_ms": ms(percentile(adds, 0.99)),
        "max_ms": ms(max(adds, default=None)),
        "p99_commit_ms": ms(percentile(commits, 0.99)),
        "flowmods_per_event": round(per_event, 1),
        "flowmods_per_s": round(p.flow_mods / elapsed) if elapsed > 0 else None,
        "hosting_hvs_per_event": round(hosting, 1),
        "flowmods_per_hosting_hv": round(per_event / hosting, 2),
        "switches_touched": p.touched,
        "cpu_s": round(p.cpu_s, 2),
        "cpu_ms_per_event": round(1000 * p.cpu_s / len(planned), 2),
        "engine_ms_per_event": round(1000 * p.engine_s / len(planned), 2),
        "complete": p.waited["done"], "missing_pairs": p.waited["missing_pairs"],
    }


def verdicts(r: dict[str, Any]) -> dict[str, Any]:
    """Each target of the issue (stated for 1,000 switches) against this run."""
    encode = r["osken_encode_per_s"]

    def check(measured: float | None, target: float, higher_is_better: bool) -> dict[str, Any]:
        met = measured is not None and (measured >= target if higher_is_better
                                        else measured < target)
        return {"measured": measured, "target": target, "met": met}

    return {
        "at_switches": TARGETS["switches"],
        "flowmods_per_s": check(r["flowmods_per_s"], TARGETS["flowmods_x_encode"] * encode,
                                True),
        "events_per_s": check(r["events_per_s"], TARGETS["events_per_s"], True),
        "p99_ms": check(r["p99_ms"], TARGETS["p99_ms"], False),
        "cold_start_s": check(r["cold_start_s"], TARGETS["cold_start_s"], False),
        "controller_rss_mb": check(r["controller_rss_mb"], TARGETS["rss_mb"], False),
    }


def headline(cold: dict[str, Any], paced: dict[str, Any] | None, burst: dict[str, Any] | None,
             extra: dict[str, Any]) -> dict[str, Any]:
    """The figures of the issue; event figures are None when the cold start did not finish."""
    return {
        "events_per_s": burst["events_per_s"] if burst else None,
        "p50_ms": paced["p50_ms"] if paced else None,
        "p99_ms": paced["p99_ms"] if paced else None,
        "flowmods_per_event": paced["flowmods_per_event"] if paced else None,
        "flowmods_per_s": cold["flowmods_per_s"],
        "cold_start_s": cold["cold_start_s"] if cold["complete"] else None,
        "controller_rss_mb": round(peak_rss_mb(), 1),
        "osken_encode_per_s": extra["osken_encode_per_s"],
        "flows_per_switch": cold["flows_per_switch"],
        "cpu_s": extra["cpu_s"],
    }


# --- the run --------------------------------------------------------------------------------

def code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                                  timeout=10, stdin=subprocess.DEVNULL).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "ryu_dove",
                  "ovsdb_agent")
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "controller_dirty": bool(changed)}


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


@contextmanager
def fleet_process(port: int, switches: int, workdir: Path) -> Iterator[FleetClient]:
    with open(workdir / "fleet.stderr", "w") as err:
        fleet = FleetClient(port, switches, err)
        try:
            yield fleet
        finally:
            fleet.close()


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    world = World(args.switches, args.endpoints, args.tenants, min(args.spread, args.switches))
    load_start = round(os.getloadavg()[0], 2)  # other work on the machine skews wall times
    baseline = {"osken_encode_per_s": round(osken_encode_per_s()),
                "osken_bundle_add_per_s": round(osken_encode_per_s(bundled=True))}
    policy = workdir / "scale-policy.yaml"
    policy.write_text(world.policy_yaml())
    ofp_port = free_port()
    app = start_controller(policy, workdir / "controller.log", ofp_port)
    cpu, gc_meter = CpuMeter(app.engine), GcMeter()
    with fleet_process(ofp_port, world.switches, workdir) as fleet:
        b = Bench(args, world, Hypervisors(world), app.engine, fleet, cpu)
        ingested = ingest(b)
        cold = cold_figures(cold_start(b))
        single = paced = burst = None  # not measured on an incomplete cold start
        if cold["complete"]:
            single = event_figures(*isolated(b, args.isolated))
            paced = event_figures(*events(b, args.events, args.rate))
            burst = event_figures(*events(b, args.events, None))
        engine_barrier(app.engine, args.timeout)
        in_sync = sum(1 for rec in list(app.engine.reconcilers.values()) if rec.in_sync)
        fleet_cpu_s = round(fleet.cpu_s(), 2)
        load_end = round(os.getloadavg()[0], 2)  # before the fleet goes: 2 threads a switch end
    extra = {**baseline, "cpu_s": round(cpu.controller_s(), 2)}
    result = {**headline(cold, paced, burst, extra), **baseline}
    return {
        "benchmark": "scale", "switches": world.switches, "endpoints": world.endpoints,
        "tenants": world.tenants, "spread": world.spread, "rate": args.rate, **result,
        "targets": verdicts(result),
        "ingest": ingested, "cold_start": cold, "isolated": single,
        "paced": paced, "burst": burst,
        "switches_in_sync": in_sync, "fleet_cpu_s": fleet_cpu_s, **gc_meter.figures(),
        "loadavg_1m": [load_start, load_end], "code": code_version(),
        "machine": machine_facts(), "command": command_line(),
    }


def print_text(r: dict[str, Any]) -> None:
    print(f"controller at scale: {r['switches']} switches, {r['endpoints']} endpoints, "
          f"{r['tenants']} tenants, spread {r['spread']}")
    for key in ("events_per_s", "p50_ms", "p99_ms", "flowmods_per_event", "flowmods_per_s",
                "cold_start_s", "controller_rss_mb", "osken_encode_per_s", "flows_per_switch",
                "cpu_s"):
        print(f"  {key:22} {r[key]}")
    for name, v in r["targets"].items():
        if isinstance(v, dict):
            print(f"  target {name:15} {v['measured']} vs {round(v['target'], 1)}: "
                  f"{'met' if v['met'] else 'MISSED'}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def add_world_options(p: argparse.ArgumentParser, switches: int) -> None:
    """The synthetic world's options, shared with benchmarks.engine_alone."""
    p.add_argument("--switches", type=positive, default=switches,
                   help=f"hypervisors ({switches})")
    p.add_argument("--endpoints", type=positive, help="initial endpoints (20 x switches)")
    p.add_argument("--tenants", type=positive, help="tenants, one network each (switches/5)")
    p.add_argument("--spread", type=positive, default=20, help="hypervisors per tenant (20)")


def world_defaults(args: argparse.Namespace) -> None:
    args.endpoints = args.endpoints or 20 * args.switches
    args.tenants = args.tenants or max(1, args.switches // 5)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale",
                                description=__doc__.splitlines()[0])
    add_world_options(p, switches=100)
    p.add_argument("--events", type=positive, default=300,
                   help="binding events in each event phase (300)")
    p.add_argument("--isolated", type=positive, default=20,
                   help="events posted one at a time, each waited for (20)")
    p.add_argument("--rate", type=float, default=500.0, help="paced events per second (500)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give up a phase after this many seconds (300)")
    p.add_argument("--workdir", type=Path,
                   help="keep the policy, controller log and fleet stderr here (default: a "
                        "temporary directory, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    world_defaults(args)
    events = 2 * args.events + args.isolated
    per_tenant = -(-args.endpoints // args.tenants) + -(-events // args.tenants)
    if per_tenant > SUBNET.num_addresses - 4:
        print(f"scale: {per_tenant} endpoints per tenant do not fit {SUBNET} (at most "
              f"{SUBNET.num_addresses - 4}): use more --tenants", file=sys.stderr)
        return 2
    raise_fd_limit(4 * args.switches + 1024)
    with tempfile.TemporaryDirectory(prefix="dove-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = run(args, workdir)
        except BenchmarkFailed as exc:
            print(f"scale: {exc}", file=sys.stderr)
            print((workdir / "fleet.stderr").read_text()[-2000:], file=sys.stderr)
            return 1
    if args.json:
        print_json(result)
    else:
        print_text(result)
    return 0  # the controller's threads (os-ken's, the engine's) are daemons: this ends them


if __name__ == "__main__":
    sys.exit(main())
