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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks.common import (
    EXAMPLE_POLICY,
    BenchmarkError,
    command_line,
    exit_on_signals,
    machine_busy_pct,
    machine_facts,
    other_labs,
    print_json,
    require,
    running_lab,
)
from dove_lab import probe
from dove_lab.lab import Lab, LabError
from dove_lab.ovs_instance import read_pid
from dove_lab.shell import CommandFailed
from dove_lab.state import VmState
from dove_lab.topology import Topology, load_topology
from ryu_dove.policy import Policy, load_policy
from ryu_dove.policy.yamlmarks import ConfigError

NETWORK = "acme/web"
TOPOLOGY_YAML = """\
hypervisors: [hv1, hv2]
vms:
  - {name: vm1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: vm2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
"""
SRC, DST = "vm1", "vm2"  # the measured direction: hv1 -> hv2
IPERF_PORT = 5201
PING_COUNT = 50
PING_INTERVAL = 0.05
RATIO_TARGET = 0.95
QUIET_BUSY_PCT = 10.0  # throughput here is CPU-bound: anything else running skews it
MAX_CONNECTIONS = 128  # iperf3's own limit for -P
TOOLS = {"iperf3": "iperf3", "ping": "iputils-ping", "ss": "iproute2", "ip": "iproute2",
         "ovs-appctl": "openvswitch-switch"}
CLK_TCK = os.sysconf("SC_CLK_TCK")

Progress = Callable[[str], None]


# --- arguments ---------------------------------------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"not a whole number from {low} to {high}: {text!r}")
        return value
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dataplane",
        description="TCP throughput, ping latency, megaflows and packet-ins VM to VM across two "
                    "hypervisors: the DOVE pipeline against the plain-OVS baseline, same run.")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the human summary")
    parser.add_argument("--seconds", type=_positive_float, default=10.0,
                        help="length of each iperf3 run (default 10)")
    parser.add_argument("--connections", type=_int_in(1, MAX_CONNECTIONS), default=100,
                        help="concurrent TCP connections for the megaflow count (default 100)")
    parser.add_argument("--rounds", type=_int_in(1, 20), default=3,
                        help="throughput/latency rounds per lab, alternating order; medians are "
                             "reported (default 3)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for a quiet machine (no other lab up, CPUs "
                             f"under {QUIET_BUSY_PCT:g}%% busy) before measuring (default 0: "
                             "measure at once, warn if not quiet)")
    parser.add_argument("--policy", default=EXAMPLE_POLICY,
                        help=f"policy file with {NETWORK} (default policies/example.yaml)")
    return parser.parse_args(argv)


# --- pure parsing and statistics (unit-tested) --------------------------------------------------

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


# --- CPU accounting from /proc -----------------------------------------------------------------

@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    machine: tuple[int, ...]  # the "cpu" line of /proc/stat, in ticks
    threads: dict[str, dict[int, tuple[str, int]]]  # process label -> tid -> (name, ticks)


def _thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    ticks: dict[int, tuple[str, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return ticks
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(tid)] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
    return ticks


def cpu_snapshot(pids: dict[str, int]) -> CpuSnapshot:
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    return CpuSnapshot(time.monotonic(), tuple(int(v) for v in line[1:]),
                       {label: _thread_ticks(pid) for label, pid in pids.items()})


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Machine-wide shares (% of all CPUs) and each process's % of one core, by thread."""
    delta = [b - a for a, b in zip(before.machine, after.machine, strict=True)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    user, nice, system, idle, iowait, irq, softirq, steal = delta[:8]
    wall = max(after.at - before.at, 1e-9)
    out: dict[str, Any] = {"machine": {
        "busy_pct": round(100 * (total - idle - iowait) / total, 1),
        "user_pct": round(100 * (user + nice) / total, 1),
        "system_pct": round(100 * system / total, 1),
        "softirq_pct": round(100 * (irq + softirq) / total, 1),
        "steal_pct": round(100 * steal / total, 1),
    }, "processes": {}}
    for label, threads in after.threads.items():
        old = before.threads.get(label, {})
        per_thread: dict[str, float] = {}
        for tid, (name, ticks) in threads.items():
            used = ticks - old.get(tid, (name, 0))[1]
            per_thread[name] = per_thread.get(name, 0.0) + 100 * used / CLK_TCK / wall
        busiest = [kv for kv in sorted(per_thread.items(), key=lambda kv: -kv[1])[:3]
                   if kv[1] >= 0.05]
        out["processes"][label] = {
            "pct_of_one_core": round(sum(per_thread.values()), 1),
            "busiest_threads": {name: round(pct, 1) for name, pct in busiest},
        }
    return out


def average_usage(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several cpu_usage results (same keys), busiest threads of the first kept."""
    if not samples:
        return {}
    first = samples[0]
    out: dict[str, Any] = {"machine": {k: round(statistics.fmean(s["machine"][k] for s in samples),
                                                1) for k in first["machine"]},
                           "processes": {}}
    for label in first["processes"]:
        rows = [s["processes"][label] for s in samples if label in s["processes"]]
        names = {n for r in rows for n in r["busiest_threads"]}
        means = {n: statistics.fmean(r["busiest_threads"].get(n, 0.0) for r in rows)
                 for n in names}
        threads = {n: round(pct, 1) for n, pct in means.items() if pct >= 0.05}
        out["processes"][label] = {
            "pct_of_one_core": round(statistics.fmean(r["pct_of_one_core"] for r in rows), 1),
            "busiest_threads": dict(sorted(threads.items(), key=lambda kv: -kv[1])[:3]),
        }
    return out


# --- one lab under test --------------------------------------------------------------------------

@dataclass
class Side:
    """One lab measured: `dove` (controller pipeline) or `plain` (the baseline)."""

    label: str
    lab: Lab
    src: VmState
    dst: VmState
    cpu_pids: dict[str, int] = field(default_factory=dict)
    mbps: list[float] = field(default_factory=list)
    runs: list[IperfResult] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    pings_sent: int = 0
    cpu: list[dict[str, Any]] = field(default_factory=list)
    parallel: IperfResult | None = None
    megaflows_hv1: list[int] = field(default_factory=list)
    megaflows_hv2: list[int] = field(default_factory=list)
    packet_ins_before: int | None = None
    packet_ins_after: int | None = None


def make_side(label: str, lab: Lab) -> Side:
    state = lab.state()
    side = Side(label, lab, state.vms[SRC], state.vms[DST])
    for hv in state.hypervisors.values():
        pid = read_pid(lab.ovs(hv).pidfile("ovs-vswitchd"))
        if pid is None:
            raise BenchmarkError(f"no ovs-vswitchd pid for {hv.name} of lab {lab.name}")
        side.cpu_pids[f"ovs-vswitchd@{hv.name}"] = pid
    ctl = lab.status()["controller"]
    if state.controller and ctl["pid"]:
        side.cpu_pids["dove-controller"] = int(ctl["pid"])
    return side


def api_get(lab: Lab, resource: str) -> Any:
    url = f"{lab.status()['controller']['api']}/v1/{resource}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def wait_in_sync(lab: Lab, timeout: float = 30.0) -> None:
    """Until the controller says every hypervisor has exactly its flows."""
    names = set(lab.state().hypervisors)
    deadline = time.monotonic() + timeout
    while True:
        try:
            hvs = {h["name"]: h for h in api_get(lab, "hypervisors")}
            if names <= hvs.keys() and all(hvs[n]["in_sync"] for n in names):
                return
        except (OSError, ValueError):
            pass  # not answering yet
        if time.monotonic() > deadline:
            raise BenchmarkError(f"lab {lab.name}: hypervisors not in sync with the controller "
                                 f"within {timeout:.0f} s")
        time.sleep(0.1)


def packet_ins(lab: Lab) -> int:
    try:
        return int(api_get(lab, "controller")["packet_ins"])
    except (OSError, ValueError, KeyError) as exc:
        raise BenchmarkError(f"lab {lab.name}: cannot read packet_ins from the controller API: "
                             f"{exc}") from exc


@contextmanager
def iperf_server(vm: VmState, timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """`iperf3 -s` in the VM's namespace, listening before this yields; killed on leaving.

    Not daemonised: a process left in a namespace would outlive the lab's `down`.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["ip", "netns", "exec", vm.netns, "iperf3", "-s", "-p",
                                 str(IPERF_PORT)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            _wait_listening(vm, proc, err, timeout)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_listening(vm: VmState, proc: subprocess.Popen[bytes], err: IO[bytes],
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listening = subprocess.run(
            ["ip", "netns", "exec", vm.netns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()
        if listening:
            return
        if proc.poll() is not None:
            err.seek(0)
            raise BenchmarkError(f"iperf3 server in {vm.name} exited ({proc.returncode}): "
                                 f"{err.read().decode(errors='replace').strip()}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"iperf3 server in {vm.name} not listening on port "
                                 f"{IPERF_PORT} within {timeout:.0f} s")
        time.sleep(0.05)


def iperf_argv(src: VmState, dst: VmState, seconds: float, streams: int = 1) -> list[str]:
    argv = ["ip", "netns", "exec", src.netns, "iperf3", "-c", dst.ip, "-p", str(IPERF_PORT),
            "-t", f"{seconds:g}", "-J", "--connect-timeout", "5000"]
    return argv + (["-P", str(streams)] if streams > 1 else [])


def warm_up(side: Side, timeout: float = 10.0) -> None:
    """Ping until the first reply, so first-packet work (ARP) is not measured."""
    if not probe.ping(side.src, side.dst.ip, count=1, timeout=timeout):
        raise BenchmarkError(f"{side.label} lab {side.lab.name}: {side.src.name} got no reply "
                             f"from {side.dst.name} ({side.dst.ip}) within {timeout:.0f} s")


def measure_ping(side: Side) -> None:
    deadline = max(2, math.ceil(PING_COUNT * PING_INTERVAL + 3))
    out = subprocess.run(["ip", "netns", "exec", side.src.netns, "ping", "-n", "-c",
                          str(PING_COUNT), "-i", str(PING_INTERVAL), "-w", str(deadline),
                          side.dst.ip], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=deadline + 10)
    rtts = parse_ping(out.stdout)
    if not rtts:
        raise BenchmarkError(f"{side.label}: no ping reply from {side.dst.ip}: "
                             f"{(out.stdout + out.stderr).strip()[-300:]}")
    side.rtts += rtts
    side.pings_sent += PING_COUNT


def measure_throughput(side: Side, seconds: float) -> IperfResult:
    before = cpu_snapshot(side.cpu_pids)
    proc = subprocess.run(iperf_argv(side.src, side.dst, seconds), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=seconds + 60)
    after = cpu_snapshot(side.cpu_pids)
    result = parse_iperf(proc.stdout or proc.stderr)
    side.runs.append(result)
    side.mbps.append(result.mbps)
    side.cpu.append(cpu_usage(before, after))
    return result


def measure_megaflows(side: Side, seconds: float, connections: int) -> None:
    """Datapath flows on both hypervisors, sampled while `connections` TCP streams run."""
    state = side.lab.state()
    ovs1, ovs2 = (side.lab.ovs(state.hypervisors[h]) for h in ("hv1", "hv2"))
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(iperf_argv(side.src, side.dst, seconds, connections),
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            # Sample from 1 s in (every connection open) to the end of the run.
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if 1.0 <= elapsed <= seconds - 0.5:
                    side.megaflows_hv1.append(count_megaflows(ovs1.appctl("dpctl/dump-flows")))
                    side.megaflows_hv2.append(count_megaflows(ovs2.appctl("dpctl/dump-flows")))
                if elapsed > seconds + 60:
                    raise BenchmarkError(f"{side.label}: iperf3 -P {connections} did not end")
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        side.parallel = parse_iperf(out.read().decode(errors="replace"))
    if not side.megaflows_hv1:
        raise BenchmarkError(f"{side.label}: no megaflow sample taken (--seconds too short?)")


# --- the run -------------------------------------------------------------------------------------

def load_lab_config(policy_path: str) -> tuple[Policy, Topology]:
    """The policy and the two-VM topology, checked by the lab's own topology loader."""
    policy = load_policy([policy_path])
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="dataplane-topology-") as f:
        f.write(TOPOLOGY_YAML)
        f.flush()
        topology = load_topology(f.name, policy)
    return policy, topology


def background(wait: float, progress: Progress) -> dict[str, Any]:
    """Is anything else loading the machine? Waits up to `wait` s for it to go quiet."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        labs, busy = other_labs(), machine_busy_pct(1.0)
        quiet = not labs and busy < QUIET_BUSY_PCT
        if quiet or time.monotonic() >= deadline:
            break
        if not told:
            progress(f"waiting up to {wait:.0f} s for a quiet machine (CPUs {busy:.0f}% busy, "
                     f"other labs: {', '.join(labs) or 'none'})")
            told = True
    if not quiet:
        progress(f"WARNING: the machine is not quiet (CPUs {busy:.0f}% busy, other labs: "
                 f"{', '.join(labs) or 'none'}); throughput figures will be skewed")
    return {"busy_pct_before": busy, "other_labs_before": labs, "quiet": quiet}


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
        dove, plain = make_side("dove", dove_lab), make_side("plain", plain_lab)
        wait_in_sync(dove_lab)
        dove.packet_ins_before = packet_ins(dove_lab)
        for side in (dove, plain):
            warm_up(side)
            stack.enter_context(iperf_server(side.dst))
        for r in range(args.rounds):
            for side in (dove, plain) if r % 2 == 0 else (plain, dove):
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
    return out


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
        f"  {s['rounds']} rounds x {s['seconds']:g} s iperf3, alternating; medians",
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run(args, progress)
    except (BenchmarkError, LabError, ConfigError, CommandFailed,
            subprocess.SubprocessError) as exc:
        print(f"benchmarks.dataplane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmarks.dataplane: interrupted; the labs were taken down", file=sys.stderr)
        return 130
    except SystemExit as exc:  # SIGTERM/SIGHUP (exit_on_signals): the labs are down already
        if isinstance(exc.code, int) and exc.code > 128:
            print(f"benchmarks.dataplane: stopped by signal {exc.code - 128}; the labs were "
                  "taken down", file=sys.stderr)
        raise
    if args.json:
        print_json(result)
    else:
        print(human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
