"""Convergence of the DOVE controller in the one-machine lab: how fast bound VMs can talk.

    python -m benchmarks.convergence --hypervisors H --vms V [--json]
    python -m benchmarks.convergence --sweep [--vms V] [--json]      # H = 2, 4, 8, 16

Runs as root on a machine with Open vSwitch (docs/lab.md). Every figure comes from a fresh
lab (`dove_lab.lab.Lab`, driven only through its public API) that is always taken down
again, on errors and Ctrl-C too. Two tenants of policies/example.yaml, `acme/web` and
`globex/web` (both 198.51.100.0/26), with V VMs per hypervisor, alternating tenants.

Figures
-------
- `converge_s`: from the moment the VM ports are bound until every same-network pair of VMs
  has had its first echo reply; every cross-tenant pair is then checked to be refused (`leaks`).
- `add_vm_s`: one more VM (acme) bound at runtime, until it has a reply from every same-network
  peer and every peer has one from it.
- `migrate_s`: a VM moved to another hypervisor (unplug, then plug with the same MAC and IP),
  from the unplug until a third VM of its network gets a reply from it again (3 moves).
  `migrate_preplugged_s`: 3 more moves with the destination port plugged beforehand (the
  controller refuses it while the old port holds the MAC), timed from the unplug as well.
- `flows_per_hv`: OpenFlow flows on br-int once converged (`ovs-ofctl dump-aggregate`).
- `controller_cpu_s`, `controller_rss_mb`: the controller process over the whole run
  (/proc/PID/stat utime+stime since it started; VmRSS at the end and VmHWM, its peak).

How it is measured (decisions)
------------------------------
- Binding: the lab comes up with its hypervisors and the controller but no VM; the benchmark
  waits until the controller reports every hypervisor connected and in sync and the tunnel
  mesh complete (`/v1/tunnels`: H*(H-1) ports, all numbered). The VM namespaces, veths and
  addresses are then made exactly as `dove_lab.nodes.create_vm` makes them (its own
  helpers are called), *without* the final plug. `Lab.add_vm` cannot be used: it plugs in
  the same step, so its namespace set-up would count as convergence. The probes start, t0 is
  taken, and then every hypervisor plugs all of its VM ports in ONE OVSDB transaction (port +
  the contract's `external_ids`, as `VSwitch.plug_vif` does), the hypervisors in parallel.
  These VMs are not recorded in the lab's state.json (that needs Lab internals); they are
  named `dove-<lab>.<vm>` like the lab's own, so `Lab.down()` removes them (it deletes every
  namespace with the lab's prefix; their veths go with them). The benchmark checks after
  `down` that nothing with the lab's prefix is left.
- Reachability: raw ICMP from inside each VM namespace (benchmarks/probe_icmp.py): one echo
  per still-unanswered pair every 20 ms; a pair counts at its first reply, and only a reply
  with the pair's ICMP id and one of its sequence numbers, from the destination's IP *and*
  MAC (seen on an AF_PACKET socket, kernel receive timestamps). VMs retransmit ARP every
  20 ms (`net.ipv4.neigh.eth0.retrans_time_ms=20`, `mcast_solicit=10`: a failed entry is
  restarted by the next echo at once, and stops broadcasting 200 ms after the probes stop).
- Addresses: acme VMs get .10, .11, ...; the first globex VM gets .10 too (overlapping
  addresses, allowed between tenants) and the others get addresses that do not exist in acme
  (after the acme range). So a cross-tenant echo is either unanswerable (the address does not
  exist in the sender's network: no reply at all is the only correct outcome) or, for .10,
  answered by the sender's *own-network* VM with that address, which is correct isolation and
  is told apart by the replying MAC; a sender never probes its own address. If the /26 runs out
  (H*V > ~50), every globex VM reuses an acme address.
- Refusal: once converged, every cross-tenant pair gets 5 echoes 20 ms apart and 200 ms more to
  answer (64 pairs at a time; pairs whose address exists in the sender's network must be
  answered from there: the positive control that the window's echoes got through). `leaks`
  counts every reply, in any phase, to one of our echoes whose Ethernet source is a VM of
  another network than the sender's (or no VM at all). It must be 0. Cross-tenant
  pairs are not probed *during* convergence: ARP for addresses that exist nowhere in the
  sender's network is flooded to every hypervisor hosting it, and 50 such broadcasts per
  second per pair would load the userspace switches the benchmark is timing.
- Migration: the moved VM's new incarnation is a new namespace `dove-<lab>.<vm>m<i>` on the
  destination, prepared before t0 with the same MAC, IP, routes and ARP cache (as a live
  migration keeps the guest's memory) and a distinct `net.ipv4.ip_default_ttl`, so its replies
  are told from the old incarnation's (same MAC, same IP). At t0 the old port is unplugged
  (one OVSDB transaction), then the new one is plugged (one more) with the same `iface-id`,
  MAC and IP: ryu_dove refuses a MAC bound elsewhere until the old port is gone
  (docs/controller.md). The observer is a same-network VM on a third hypervisor when there is
  one (H >= 3); with H = 2 it sits on one of the two. Its ARP cache keeps the same MAC.
- Granularity: a path that becomes ready is seen at the next echo or ARP retransmission,
  so every figure carries 0-20 ms of probe quantisation (the same for the OVN bar, measured
  the same way). OVSDB transactions here wait until ovs-vswitchd has applied them, as
  ovs-vsctl and os-vif do; `unplug_txn_s` / `plug_txn_done_s` show that share of a move.
- Where the time goes: the controller's log (`endpoint ... on HV` when the engine has taken
  a port's OVSDB report, `HV: bundle|update N committed` when the engine has handled the
  switch's commit or barrier reply; the controller runs with `--debug=ryu_dove.openflow.reconciler`)
  is read for each phase, next to the plug transactions and the probe timeline
  (`converge_timeline`, `add_vm.timeline`, `migrations[].timeline`), and the CPU seconds of
  the controller, this process (probes, plugging) and the lab's OVS daemons while converging.
- Sharing the machine: the lab, its controller and the probes share the CPUs with whatever
  else runs. CPU used by other processes while converging is recorded
  (`foreign_cpu_converge_s`); above 10% of one CPU the run is marked `disturbed`.
  `--wait-quiet S` waits for idle CPUs and no other lab before each size, and `--attempts N`
  runs a disturbed size again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.probe_icmp import INTERVAL_S, IcmpProber, ProbeError, ProbeVm, Session
from dove_lab import nodes, shell
from dove_lab.lab import Lab, LabError
from dove_lab.naming import VM_MTU
from dove_lab.state import HypervisorState, VmState
from dove_lab.topology import Topology, default_mac
from ovsdb_agent import contract
from ryu_dove.policy import Network, Policy, load_policy

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "example.yaml"
NETWORKS = ("acme/web", "globex/web")
SWEEP = (2, 4, 8, 16)
FIRST_HOST = 10
MIGRATIONS = 3
WINDOW_ECHOES = 5
WINDOW_LINGER_S = 0.2
WINDOW_PAIRS = 64  # cross-tenant pairs probed at a time
UNPLUG_PLUG, PREPLUGGED = "unplug-then-plug", "preplugged"
DISTURBED_SHARE = 0.1  # foreign CPU above 10% of one CPU while converging: a disturbed run
INCARNATION_TTL = 100  # + move number: the new incarnation's IP TTL
# The bar: OVN 23.03 in the same kind of lab with the same probes (from the issue).
OVN_CONVERGE_S = {2: 0.039, 4: 0.070, 8: 0.137, 16: 0.455}
OVN_FLOWS = (305, 418)
OVN_RSS_MB = 10.0  # per ovn-controller, i.e. per hypervisor
OVN_MIGRATE_S = (0.011, 0.036)
ARP_SYSCTLS = ("retrans_time_ms=20", "mcast_solicit=10", "ucast_solicit=3", "app_solicit=0")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ \S+: (.*)$")
ENDPOINT_MSG = re.compile(r"^endpoint (\S+) (\S+) (\S*) (on|left) (\S+) port (\S+)$")
BUNDLE_MSG = re.compile(
    r"^(\S+): (?:bundle|update) (\d+) committed: \+(\d+) -(\d+) flows in ([\d.]+) ms$")


class BenchError(RuntimeError):
    """The benchmark could not measure what it should; the message says what and why."""


def say(text: str) -> None:
    print(f"convergence: {text}", file=sys.stderr, flush=True)


# --- the plan: which VM sits where ------------------------------------------------------------

@dataclass
class Vm:
    state: VmState
    iface_id: str  # the endpoint's identity; stays the same across a migration
    ttl: int | None = None  # set on migrated incarnations (net.ipv4.ip_default_ttl)

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def probe(self) -> ProbeVm:
        # The prober knows a VM by its iface-id: every incarnation is the same endpoint.
        return ProbeVm(self.iface_id, self.state.netns, self.state.ip, self.state.mac,
                       self.state.network, self.ttl)


def host(net: Network, n: int) -> str:
    return str(net.subnet.network_address + n)


def plan_vms(lab: Lab, policy: Policy, hvs: list[str], per_hv: int) -> tuple[list[Vm], Vm]:
    """V VMs per hypervisor, alternating tenants; plus the acme VM that add_vm binds later."""
    nets: dict[str, Network] = {}
    for key in NETWORKS:
        net = policy.network(key)
        if net is None:
            raise BenchError(f"{POLICY} has no network {key}")
        nets[key] = net
    acme = nets[NETWORKS[0]]
    slots = [(hv, NETWORKS[k % 2]) for k, hv in enumerate(h for h in hvs for _ in range(per_hv))]
    n_acme = sum(1 for _, n in slots if n == NETWORKS[0])
    n_globex = len(slots) - n_acme
    top = acme.subnet.num_addresses - 2  # the last host address
    if FIRST_HOST + n_acme > top:
        raise BenchError(f"{n_acme + 1} acme VMs do not fit {acme.subnet}: "
                         "use fewer hypervisors or VMs per hypervisor")
    overlap_all = FIRST_HOST + n_acme + n_globex > top
    vms: list[Vm] = []
    counts = {key: 0 for key in NETWORKS}
    for k, (hv, key) in enumerate(slots):
        i = counts[key]
        counts[key] += 1
        if key == NETWORKS[0] or i == 0 or overlap_all:
            n = FIRST_HOST + i
        else:  # after the acme range and the address reserved for the added VM
            n = FIRST_HOST + n_acme + i
        vms.append(make_vm(lab, policy, f"vm{k + 1}", hv, key, host(nets[key], n)))
    extra = make_vm(lab, policy, "vmadd", hvs[0], NETWORKS[0], host(acme, FIRST_HOST + n_acme))
    return vms, extra


def make_vm(lab: Lab, policy: Policy, name: str, hv: str, network: str, ip: str,
            iface_id: str | None = None, mac: str | None = None, ttl: int | None = None) -> Vm:
    net = policy.network(network)
    assert net is not None
    why = net.host_problem(ip)
    if why:
        raise BenchError(f"planned address {ip} for {name}: {why}")
    state = VmState(name=name, hypervisor=hv, network=network, ip=ip,
                    prefixlen=net.subnet.prefixlen, gateway=str(net.gateway),
                    mac=(mac or default_mac(network, name)).lower(),
                    netns=lab.names.netns(name), port=nodes.vif_port(name))
    return Vm(state, iface_id or name, ttl)


# --- VMs without plugging, and plugging -------------------------------------------------------

def build_unplugged(vm: Vm, hv_netns: str, neighbours: Iterable[Vm] = ()) -> None:
    """What nodes.create_vm does, minus the plug; plus fast ARP timers (and a TTL mark)."""
    st = vm.state
    nodes.netns_add(st.netns)
    if vm.ttl is not None:
        nodes.sysctl(st.netns, f"net.ipv4.ip_default_ttl={vm.ttl}")
    shell.run(["ip", "-n", hv_netns, "link", "add", st.port, "type", "veth",
               "peer", "name", "eth0", "netns", st.netns])
    shell.run(["ip", "-n", hv_netns, "link", "set", st.port, "mtu", str(VM_MTU), "up"])
    # Per interface: a namespace other than the root one has no neigh/default to set (its
    # devices copy the machine-wide defaults, which are not ours to change).
    nodes.sysctl(st.netns, *(f"net.ipv4.neigh.eth0.{s}" for s in ARP_SYSCTLS))
    # The lab's own VM interface set-up (MAC, MTU, address, default route, TX offload off),
    # so these VMs are exactly the lab's; only the plug is left for later.
    nodes.configure_vm_interface(st)
    batch = "".join(f"neigh replace {n.state.ip} lladdr {n.state.mac} dev eth0 nud reachable\n"
                    for n in neighbours)
    if batch:
        subprocess.run(["ip", "-n", st.netns, "-batch", "-"], input=batch, text=True,
                       check=True, capture_output=True)


def vif_ids(vm: Vm) -> dict[str, str]:
    return {**nodes.vif_ids(vm.state), contract.IFACE_ID: vm.iface_id}


def plug(lab: Lab, hv: HypervisorState, vms: list[Vm]) -> None:
    """Every given VM port of one hypervisor in ONE OVSDB transaction (waits for vswitchd)."""
    vswitch = lab.vswitch(hv)
    with vswitch.transaction() as txn:
        for vm in vms:
            txn.add(vswitch.api.add_port(contract.INTEGRATION_BRIDGE, vm.state.port,
                                         may_exist=True))
            txn.add(vswitch.api.db_set("Interface", vm.state.port,
                                       ("external_ids", vif_ids(vm))))


def unplug(lab: Lab, hv: HypervisorState, vm: Vm) -> None:
    lab.vswitch(hv).unplug(vm.state.port)


def plug_all_at_once(lab: Lab, by_hv: dict[str, list[Vm]]) -> tuple[float, dict[str, float]]:
    """t0, then each hypervisor's transaction from its own thread; (t0, done time per hv)."""
    hvs = lab.state().hypervisors
    gate = threading.Barrier(len(by_hv) + 1)
    done: dict[str, float] = {}
    errors: list[BaseException] = []

    def work(name: str, vms: list[Vm]) -> None:
        gate.wait()
        try:
            plug(lab, hvs[name], vms)
            done[name] = time.monotonic()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=item, daemon=True) for item in by_hv.items()]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    gate.wait()
    for t in threads:
        t.join(timeout=60)
    if errors or len(done) != len(by_hv):
        raise BenchError(f"plugging failed: {errors[0] if errors else 'timed out'}")
    return t0, done


# --- what the controller says -----------------------------------------------------------------

class Api:
    def __init__(self, lab: Lab) -> None:
        self.base = str(lab.status()["controller"]["api"])

    def get(self, resource: str) -> Any:
        # The lab's management network is local: no proxy, ever.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.base}/v1/{resource}", timeout=5) as resp:
            return json.load(resp)


def wait_until(what: str, timeout: float, check: Callable[[], str | None],
               interval: float = 0.05) -> None:
    """Poll `check` (None when satisfied, else why not) until it is satisfied or time is up."""
    deadline = time.monotonic() + timeout
    why: str | None = "not checked"
    while True:
        try:
            why = check()
        except OSError as exc:
            why = f"API: {exc}"
        if why is None:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}: {why}")
        time.sleep(interval)


def synced_check(api: Api, names: list[str], tunnels: bool = True) -> Callable[[], str | None]:
    def check() -> str | None:
        hvs = {h["name"]: h for h in api.get("hypervisors")}
        missing = [n for n in names if n not in hvs]
        if missing:
            return f"controller does not know {missing}"
        bad = [n for n in names if not (hvs[n]["ovsdb"] and hvs[n]["openflow"]
                                        and hvs[n]["in_sync"])]
        if bad:
            return f"not connected and in sync: {bad}"
        if tunnels:
            tun = api.get("tunnels")
            want = len(names) * (len(names) - 1)
            numbered = [t for t in tun if t.get("ofport")]
            if len(tun) != want or len(numbered) != want:
                return f"{len(numbered)}/{want} tunnel ports numbered"
        return None
    return check


def refused_check(api: Api, port: str) -> Callable[[], str | None]:
    def check() -> str | None:
        refused = {r["port"] for r in api.get("refused")}
        return None if port in refused else f"{port} is not (yet) refused"
    return check


def endpoints_check(api: Api, ports: set[str]) -> Callable[[], str | None]:
    def check() -> str | None:
        bound = {e["port"] for e in api.get("endpoints")}
        missing = ports - bound
        return f"ports not bound: {sorted(missing)[:5]}" if missing else None
    return check


# --- measuring the processes and switches ----------------------------------------------------

@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_mb: float
    hwm_mb: float


def proc_usage(pid: int) -> Usage:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise BenchError(f"the controller (pid {pid}) is gone: {exc}") from exc
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
          if line.startswith(("VmRSS:", "VmHWM:"))}
    return Usage(cpu, kb.get("VmRSS", 0) / 1024, kb.get("VmHWM", 0) / 1024)


def flow_counts(lab: Lab) -> dict[str, int]:
    counts = {}
    for hv in lab.state().hypervisors.values():
        ovs = lab.ovs(hv)
        out = ovs.ofctl("dump-aggregate", ovs.bridge_mgmt(contract.INTEGRATION_BRIDGE))
        m = re.search(r"flow_count=(\d+)", out)
        if m is None:
            raise BenchError(f"cannot read br-int's flow count on {hv.name}: {out.strip()}")
        counts[hv.name] = int(m.group(1))
    return counts


@dataclass
class LogEvents:
    endpoints: list[tuple[float, str, str]] = field(default_factory=list)  # (wall, hv, port)
    left: list[tuple[float, str, str]] = field(default_factory=list)
    bundles: list[tuple[float, str, int, int, float]] = field(default_factory=list)


def read_log(path: str, since_wall: float, until_wall: float) -> LogEvents:
    """Endpoint and bundle events of the controller's log between two wall-clock times."""
    events = LogEvents()
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return events
    for line in lines:
        m = LOG_LINE.match(line)
        if m is None:
            continue
        wall = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e3
        if not since_wall - 0.001 <= wall <= until_wall + 0.001:
            continue
        msg = m.group(3)
        if e := ENDPOINT_MSG.match(msg):
            (events.endpoints if e.group(4) == "on" else events.left).append(
                (wall, e.group(5), e.group(6)))
        elif b := BUNDLE_MSG.match(msg):
            events.bundles.append((wall, b.group(1), int(b.group(3)), int(b.group(4)),
                                   float(b.group(5))))
    return events


def timeline(log: str, wall0: float, t0: float, plug_done: Iterable[float],
             firsts: Iterable[float]) -> dict[str, Any]:
    """Seconds after t0: the plug transactions, the controller's log, the first replies."""
    replies = sorted(f - t0 for f in firsts)
    ev = read_log(log, wall0, time.time())

    def rel(walls: list[float]) -> tuple[float | None, float | None]:
        return (round(min(walls) - wall0, 4), round(max(walls) - wall0, 4)) if walls \
            else (None, None)

    ep_first, ep_last = rel([w for w, _, _ in ev.endpoints])
    b_first, b_last = rel([w for w, *_ in ev.bundles])
    left_first, _ = rel([w for w, _, _ in ev.left])
    plugged = [p - t0 for p in plug_done]
    return {
        "plug_txn_done_s": round(max(plugged), 4) if plugged else None,
        "endpoints_seen": len(ev.endpoints),
        "first_endpoint_s": ep_first, "last_endpoint_s": ep_last,
        "endpoints_left": len(ev.left), "first_left_s": left_first,
        "bundles": len(ev.bundles),
        "flows_added": sum(b[2] for b in ev.bundles),
        "flows_deleted": sum(b[3] for b in ev.bundles),
        "first_bundle_s": b_first, "last_bundle_s": b_last,
        "max_bundle_ms": max((b[4] for b in ev.bundles), default=None),
        "first_reply_s": round(replies[0], 4) if replies else None,
        "median_reply_s": round(statistics.median(replies), 4) if replies else None,
        "p90_reply_s": round(replies[int(0.9 * (len(replies) - 1))], 4) if replies else None,
        "last_reply_s": round(replies[-1], 4) if replies else None,
    }


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ovs = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        ovs = "unknown"
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "ovs": ovs, "python": platform.python_version(),
            "datapath": "netdev (userspace)"}


def cpu_ticks_by_pid() -> dict[int, tuple[int, str]]:
    """utime+stime (clock ticks) and command of every process on the machine."""
    out: dict[int, tuple[int, str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        out[int(proc.name)] = (int(fields[11]) + int(fields[12]), cmd.strip()[:120])
    return out


def foreign_cpu(before: dict[int, tuple[int, str]], after: dict[int, tuple[int, str]],
                ours: Callable[[int, str], bool], skip: Iterable[int] = ()
                ) -> tuple[float, float, list[str]]:
    """CPU seconds used between two samples by processes of this lab's (ours(pid, cmd) is
    True, e.g. its OVS) and by everything else on the machine but `skip`, with the busiest."""
    ticks = os.sysconf("SC_CLK_TCK")
    mine, used = 0.0, []
    skipped = set(skip)
    for pid, (t1, cmd) in after.items():
        t0 = before.get(pid, (0, cmd))[0]
        if t1 <= t0 or not cmd or pid in skipped:
            continue
        if ours(pid, cmd):
            mine += (t1 - t0) / ticks
        else:
            used.append(((t1 - t0) / ticks, cmd))
    used.sort(reverse=True)
    return round(mine, 3), round(sum(u for u, _ in used), 3), [f"{u:.2f}s {c}" for u, c in used[:3]]


def other_labs(mine: str) -> list[str]:
    root = Path("/run/dove-lab")
    if not root.exists():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.name != mine and (d / "state.json").exists())


def cpu_busy_pct(sample_s: float = 2.0) -> float:
    """How busy the machine's CPUs were over a short sample (all processes, all CPUs)."""
    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle
    total0, idle0 = read()
    time.sleep(sample_s)
    total1, idle1 = read()
    return round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def wait_for_quiet(seconds: float, busy_max: float = 15.0) -> float:
    """Wait up to `seconds` until no other lab is up and the CPUs are (nearly) idle.

    Returns the CPU busy percentage last sampled (recorded with the results: other work on
    this machine shares its CPUs with the controller, OVS and the probes).
    """
    deadline = time.monotonic() + seconds
    noted = False
    while True:
        busy = cpu_busy_pct()
        others = other_labs("")
        if (not others and busy <= busy_max) or time.monotonic() >= deadline:
            if noted:
                say(f"machine {'quiet' if busy <= busy_max and not others else 'still busy'}: "
                    f"CPUs {busy}% busy, other labs: {', '.join(others) or 'none'}")
            return busy
        if not noted:
            say(f"waiting up to {seconds:.0f} s for a quiet machine (CPUs {busy}% busy, "
                f"other labs: {', '.join(others) or 'none'})")
            noted = True


# --- one run --------------------------------------------------------------------------------

def pairs_of(vms: list[Vm], same: bool) -> list[tuple[Vm, Vm]]:
    return [(a, b) for a, b in itertools.permutations(vms, 2)
            if (a.state.network == b.state.network) == same]


def median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


@dataclass
class Run:
    hypervisors: int
    per_hv: int
    migrations: int
    timeout: float
    keep_logs: Path | None = None
    lab: Lab = field(init=False)
    policy: Policy = field(init=False)

    def __post_init__(self) -> None:
        self.lab = Lab("cv" + secrets.token_hex(3))
        self.policy = load_policy([str(POLICY)])
        self.hv_names = [f"hv{i + 1}" for i in range(self.hypervisors)]
        self.prober: IcmpProber | None = None

    def log(self, text: str) -> None:
        say(f"[H={self.hypervisors} V={self.per_hv} lab {self.lab.name}] {text}")

    def execute(self) -> dict[str, Any]:
        try:
            result = self._measure()
        finally:
            if self.prober is not None:
                self.prober.close()
            self._keep_log()
            self.lab.down()
            left = [ns for ns in nodes.netns_list()
                    if ns.startswith(self.lab.names.netns_prefix)]
            if left:  # the VMs made here are not in state.json: down must find them by name
                self.log(f"namespaces left after down: {left}")
        if left:
            raise BenchError(f"lab {self.lab.name}: namespaces left after down: {left}")
        return result

    def _lab_ovs(self, _pid: int, cmd: str) -> bool:
        """This lab's OVS daemons (the controller and this process are counted apart)."""
        return f"{self.lab.dir}/" in cmd

    def _keep_log(self) -> None:
        if self.keep_logs is None:
            return
        log = self.lab.dir / "controller.log"
        if log.exists():
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            target = self.keep_logs / f"convergence-H{self.hypervisors}-{self.lab.name}.log"
            shutil.copyfile(log, target)
            self.log(f"controller log kept as {target}")

    def _measure(self) -> dict[str, Any]:
        lab, started = self.lab, time.monotonic()
        others = other_labs(lab.name)
        load = os.getloadavg()[0]
        if others:
            self.log(f"note: other labs are up on this machine ({', '.join(others)}); "
                     "they share the CPUs")
        self.log("bringing the lab up (hypervisors and controller, no VM)")
        lab.up(Topology(tuple(self.hv_names)), [str(POLICY)], self.policy, controller=True,
               connect_timeout=60.0,  # every committed update logged, for the timelines
               controller_args=["--debug=ryu_dove.openflow.reconciler"])
        api = Api(lab)
        wait_until("hypervisors in sync and the tunnel mesh", 60,
                   synced_check(api, self.hv_names))
        lab_up_s = time.monotonic() - started
        status = lab.status()
        pid, log = int(status["controller"]["pid"]), str(status["controller"]["log"])
        hvs = lab.state().hypervisors

        vms, extra = plan_vms(lab, self.policy, self.hv_names, self.per_hv)
        self.log(f"lab up in {lab_up_s:.1f} s; creating {len(vms) + 1} VM namespaces "
                 "(not plugged)")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda v: build_unplugged(v, hvs[v.state.hypervisor].netns),
                          [*vms, extra]))
        self.prober = prober = IcmpProber(INTERVAL_S)
        for vm in [*vms, extra]:
            prober.add_vm(vm.probe)
        for hv in hvs.values():
            lab.vswitch(hv)  # open every OVSDB connection before t0 (~0.1 s each)
        wait_until("hypervisors in sync", 30, synced_check(api, self.hv_names))
        cpu_before = proc_usage(pid)
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        procs_before = cpu_ticks_by_pid()

        # --- converge -----------------------------------------------------------------
        same = pairs_of(vms, same=True)
        self.log(f"binding {len(vms)} VMs; probing {len(same)} same-network pairs")
        session = prober.until_answered((a.probe, b.probe) for a, b in same)
        time.sleep(2 * INTERVAL_S)  # the probes (and the VMs' ARP) are running before t0
        wall0 = time.time()
        by_hv: dict[str, list[Vm]] = {}
        for vm in vms:
            by_hv.setdefault(vm.state.hypervisor, []).append(vm)
        t0, plug_done = plug_all_at_once(lab, by_hv)
        self._wait_session(session, "every same-network pair to answer")
        firsts = [f for f in session.first_replies().values() if f is not None]
        converge_s = max(firsts) - t0
        cpu_converged = proc_usage(pid)
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        ovs_s, others_s, others_top = foreign_cpu(procs_before, cpu_ticks_by_pid(),
                                                  self._lab_ovs, (os.getpid(), pid))
        converge_wall = time.monotonic() - t0
        bench_cpu = (self_after.ru_utime + self_after.ru_stime
                     - self_before.ru_utime - self_before.ru_stime)
        self.log(f"converged in {converge_s * 1000:.1f} ms; checking cross-tenant refusal")
        cross = self._refusal(vms)
        wait_until("hypervisors in sync", 30, synced_check(api, self.hv_names))
        converge_timeline = timeline(log, wall0, t0, plug_done.values(), firsts)
        flows = flow_counts(lab)

        # --- one more VM ---------------------------------------------------------------
        add = self._add_vm(vms, extra, api, log)
        # --- migrations ----------------------------------------------------------------
        moves = self._migrations([*vms, extra], api, log)

        end = proc_usage(pid)
        leaks = prober.leaks
        migrate = [m["migrate_s"] for m in moves if m["kind"] == UNPLUG_PLUG]
        preplugged = [m["migrate_s"] for m in moves if m["kind"] == PREPLUGGED]
        result: dict[str, Any] = {
            "hypervisors": self.hypervisors,
            "vms_per_hypervisor": self.per_hv,
            "vms": len(vms),
            "same_network_pairs": len(same),
            "converge_s": round(converge_s, 4),
            "add_vm_s": add["add_vm_s"],
            "migrate_s": migrate,
            "migrate_s_median": median(migrate),
            "migrate_s_max": max(migrate),
            "migrate_preplugged_s": preplugged,
            "migrate_preplugged_s_median": median(preplugged),
            "flows_per_hv": {"mean": round(statistics.mean(flows.values()), 1),
                             "max": max(flows.values()), "min": min(flows.values()),
                             "by_hypervisor": flows},
            "controller_cpu_s": round(end.cpu_s, 3),
            "controller_cpu_converge_s": round(cpu_converged.cpu_s - cpu_before.cpu_s, 3),
            "benchmark_cpu_converge_s": round(bench_cpu, 3),  # probes and plugging
            "lab_ovs_cpu_converge_s": ovs_s,
            # Other work on the machine while converging (it shares the CPUs): CPU seconds
            # of processes that are not this benchmark, its controller or its lab's OVS.
            "foreign_cpu_converge_s": others_s,
            "foreign_busiest": others_top,
            "converge_phase_wall_s": round(converge_wall, 3),
            "disturbed": others_s > DISTURBED_SHARE * converge_wall,
            "controller_rss_mb": round(end.rss_mb, 1),
            "controller_peak_rss_mb": round(end.hwm_mb, 1),
            "leaks": len(leaks),
            "leak_examples": [vars(x) for x in leaks[:5]],
            "cross_tenant": cross,
            "converge_timeline": converge_timeline,
            "add_vm": add,
            "migrations": moves,
            "probe": {"interval_s": INTERVAL_S, **prober.stats},
            "lab_up_s": round(lab_up_s, 2),
            "other_labs_up": others,
            "load_average_at_start": load,
            "lab": lab.name,
        }
        return result

    def _wait_session(self, session: Session, what: str) -> None:
        if session.wait(self.timeout):
            return
        left = session.unanswered()
        where = (f"the controller's log is kept in {self.keep_logs}" if self.keep_logs
                 else "--keep-logs DIR keeps the controller's log")
        raise BenchError(f"no reply within {self.timeout:g} s of binding for "
                         f"{len(left)} pair(s) waiting for {what}, e.g. "
                         f"{', '.join(f'{a}->{b}' for a, b in left[:6])}; {where}")

    def _refusal(self, vms: list[Vm]) -> dict[str, Any]:
        """Every cross-tenant pair: WINDOW_ECHOES echoes; no reply from the other tenant.

        In chunks of WINDOW_PAIRS pairs: ARP for an address that exists nowhere in the
        sender's network is flooded to every hypervisor hosting it, and all pairs at once
        would overload the userspace switches, whose drops could then pass for refusals.
        Pairs whose address exists in the sender's own network are the positive control:
        each must be answered, by the sender's own-network VM with that address.
        """
        assert self.prober is not None
        every = pairs_of(vms, same=False)
        cross = [(a, b) for a, b in every if a.state.ip != b.state.ip]
        own_ips = {(vm.state.network, vm.state.ip) for vm in vms}
        overlapping = {(a.iface_id, b.iface_id) for a, b in cross
                       if (a.state.network, b.state.ip) in own_ips}
        leaks_before = len(self.prober.leaks)
        echoes, own_replies, controls = 0, 0, set()
        for i in range(0, len(cross), WINDOW_PAIRS):
            chunk = cross[i:i + WINDOW_PAIRS]
            session = self.prober.window(((a.probe, b.probe) for a, b in chunk),
                                         count=WINDOW_ECHOES, linger=WINDOW_LINGER_S)
            if not session.wait(30):
                raise BenchError("the cross-tenant probe window did not finish")
            echoes += session.sent()
            for pair, n in session.own_network_replies().items():
                own_replies += n
                if n and pair in overlapping:
                    controls.add(pair)
        return {
            "pairs": len(every),
            "probed": len(cross),
            "same_address_skipped": len(every) - len(cross),
            "echoes": echoes,
            "replies_from_other_tenant": len(self.prober.leaks) - leaks_before,
            "address_exists_in_own_network": len(overlapping),
            "of_those_answered_in_own_network": len(controls),
            "own_network_replies": own_replies,
        }

    def _add_vm(self, vms: list[Vm], extra: Vm, api: Api, log: str) -> dict[str, Any]:
        assert self.prober is not None
        peers = [v for v in vms if v.state.network == extra.state.network]
        pairs = [(extra.probe, p.probe) for p in peers] + [(p.probe, extra.probe) for p in peers]
        self.log(f"binding one more VM ({extra.name} on {extra.state.hypervisor}), "
                 f"{len(pairs)} pairs")
        session = self.prober.until_answered(pairs)
        time.sleep(2 * INTERVAL_S)
        wall0 = time.time()
        t0, done = plug_all_at_once(self.lab, {extra.state.hypervisor: [extra]})
        self._wait_session(session, f"{extra.name} and its peers to answer")
        firsts = [f for f in session.first_replies().values() if f is not None]
        add_vm_s = max(firsts) - t0
        wait_until("hypervisors in sync", 30, synced_check(api, self.hv_names))
        self.log(f"{extra.name} reachable both ways in {add_vm_s * 1000:.1f} ms")
        return {"add_vm_s": round(add_vm_s, 4), "vm": extra.name,
                "hypervisor": extra.state.hypervisor, "pairs": len(pairs),
                "timeline": timeline(log, wall0, t0, done.values(), firsts)}

    def _migrations(self, vms: list[Vm], api: Api, log: str) -> list[dict[str, Any]]:
        """Move one VM back and forth: first as the issue says (unplug, then plug), then with
        the destination port plugged beforehand (refused while the old one holds the MAC)."""
        assert self.prober is not None
        hvs = self.lab.state().hypervisors
        moved = next(v for v in vms if v.state.network == NETWORKS[0])
        ends = (moved.state.hypervisor, self.hv_names[-1])
        mates = [v for v in vms if v.state.network == moved.state.network and v is not moved]
        observer = sorted(mates, key=lambda v: (v.state.hypervisor in ends, v.name))[0]
        current, results = moved, []
        kinds = [UNPLUG_PLUG] * self.migrations + [PREPLUGGED] * self.migrations
        for i, kind in enumerate(kinds, start=1):
            src = current.state.hypervisor
            dst = ends[1] if src == ends[0] else ends[0]
            name = f"{moved.name}m{i}"
            nxt = make_vm(self.lab, self.policy, name, dst, moved.state.network,
                          moved.state.ip, iface_id=moved.iface_id, mac=moved.state.mac,
                          ttl=INCARNATION_TTL + i)
            build_unplugged(nxt, hvs[dst].netns, neighbours=mates)
            # The current incarnation answers the observer before the move.
            check = self.prober.until_answered([(observer.probe, current.probe)])
            if not check.wait(5):
                raise BenchError(f"before move {i}: {observer.name} gets no reply from "
                                 f"{current.name} on {src}")
            if kind == PREPLUGGED:
                plug(self.lab, hvs[dst], [nxt])
                wait_until(f"{name} refused while {current.name} holds the MAC", 10,
                           refused_check(api, nxt.state.port))
            wait_until("hypervisors in sync", 30, synced_check(api, self.hv_names))
            session = self.prober.until_answered([(observer.probe, nxt.probe)])
            time.sleep(2 * INTERVAL_S)  # the observer is probing before t0
            wall0, t0 = time.time(), time.monotonic()
            unplug(self.lab, hvs[src], current)
            unplugged = time.monotonic()
            if kind == UNPLUG_PLUG:
                plug(self.lab, hvs[dst], [nxt])
            plugged = time.monotonic()
            self._wait_session(session, f"{observer.name} to reach {moved.name} on {dst}")
            first = session.first_replies()[(observer.iface_id, moved.iface_id)]
            assert first is not None
            wait_until("hypervisors in sync", 30, synced_check(api, self.hv_names))
            wait_until(f"{name} bound", 10, endpoints_check(api, {nxt.state.port}))
            results.append({
                "kind": kind, "migrate_s": round(first - t0, 4), "vm": moved.name,
                "from": src, "to": dst, "observer": observer.name,
                "observer_hypervisor": observer.state.hypervisor,
                "unplug_txn_s": round(unplugged - t0, 4),
                "plug_txn_done_s": round(plugged - t0, 4) if kind == UNPLUG_PLUG else None,
                "timeline": timeline(log, wall0, t0, [unplugged, plugged], [first]),
            })
            self.log(f"move {i} ({kind}): {moved.name} {src} -> {dst}: {observer.name} "
                     f"reaches it again after {(first - t0) * 1000:.1f} ms")
            current = nxt
        return results


# --- output -----------------------------------------------------------------------------------

def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def render(result: dict[str, Any]) -> str:
    h = result["hypervisors"]
    bar = OVN_CONVERGE_S.get(h)
    f, tl = result["flows_per_hv"], result["converge_timeline"]
    lines = [
        f"H={h} hypervisors, V={result['vms_per_hypervisor']} VMs each "
        f"({result['vms']} VMs, {result['same_network_pairs']} same-network pairs)",
        f"  converge_s        {ms(result['converge_s'])}"
        + (f"   (OVN 23.03: {bar * 1000:.0f} ms)" if bar else ""),
        f"    plug txns done  {ms(tl['plug_txn_done_s'])}; controller saw ports "
        f"{ms(tl['first_endpoint_s'])} .. {ms(tl['last_endpoint_s'])}; "
        f"{tl['bundles']} bundles (+{tl['flows_added']} flows) committed "
        f"{ms(tl['first_bundle_s'])} .. {ms(tl['last_bundle_s'])}; first replies "
        f"{ms(tl['first_reply_s'])} / median {ms(tl['median_reply_s'])} / "
        f"last {ms(tl['last_reply_s'])}",
        f"  leaks             {result['leaks']} "
        f"({result['cross_tenant']['probed']} cross-tenant pairs, "
        f"{result['cross_tenant']['echoes']} echoes; "
        f"{result['cross_tenant']['of_those_answered_in_own_network']}/"
        f"{result['cross_tenant']['address_exists_in_own_network']} whose address exists in "
        "the sender's network answered from there)",
        f"  add_vm_s          {ms(result['add_vm_s'])}",
        "  migrate_s         " + ", ".join(ms(x) for x in result["migrate_s"])
        + f"   (OVN: {OVN_MIGRATE_S[0] * 1000:.0f}-{OVN_MIGRATE_S[1] * 1000:.0f} ms)",
        "    pre-plugged     " + ", ".join(ms(x) for x in result["migrate_preplugged_s"])
        + "   (destination port plugged first, refused until the old one goes)",
        f"  flows_per_hv      mean {f['mean']}, max {f['max']}   "
        f"(OVN: {OVN_FLOWS[0]}-{OVN_FLOWS[1]})",
        *([f"  DISTURBED         other processes used {result['foreign_cpu_converge_s']} s "
           "CPU while it converged: " + "; ".join(result["foreign_busiest"])]
          if result["disturbed"] else []),
        f"  controller        {result['controller_cpu_s']} s CPU over the run "
        f"({result['controller_cpu_converge_s']} s while converging), "
        f"RSS {result['controller_rss_mb']} MiB (peak {result['controller_peak_rss_mb']} MiB)",
    ]
    return "\n".join(lines)


def render_table(results: list[dict[str, Any]]) -> str:
    head = (f"{'H':>3} {'VMs':>4} {'converge':>9} {'OVN':>6} {'add_vm':>8} "
            f"{'migrate med/max':>16} {'pre-plugged':>11} {'flows/hv':>9} {'ctl CPU':>8} "
            f"{'ctl RSS':>9} {'leaks':>5}")
    rows = [head]
    for r in results:
        bar = OVN_CONVERGE_S.get(r["hypervisors"])
        rows.append(
            f"{r['hypervisors']:>3} {r['vms']:>4} {r['converge_s'] * 1000:>7.1f}ms "
            f"{(f'{bar * 1000:.0f}ms' if bar else '-'):>6} {r['add_vm_s'] * 1000:>6.1f}ms "
            f"{r['migrate_s_median'] * 1000:>8.1f}/{r['migrate_s_max'] * 1000:>5.1f}ms "
            f"{r['migrate_preplugged_s_median'] * 1000:>9.1f}ms "
            f"{r['flows_per_hv']['mean']:>9} {r['controller_cpu_s']:>7.2f}s "
            f"{r['controller_peak_rss_mb']:>6.1f}MiB {r['leaks']:>5}"
            + ("  (disturbed)" if r["disturbed"] else ""))
    return "\n".join(rows)


# --- main -------------------------------------------------------------------------------------

def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.convergence",
                                description=__doc__.splitlines()[0])
    p.add_argument("--hypervisors", type=int, help="hypervisors in the lab (2-29)")
    p.add_argument("--vms", type=int, default=2, help="VMs per hypervisor (default 2)")
    p.add_argument("--sweep", action="store_true",
                   help=f"run H = {', '.join(map(str, SWEEP))} (one lab each)")
    p.add_argument("--migrations", type=int, default=MIGRATIONS,
                   help=f"moves of one VM between two hypervisors (default {MIGRATIONS})")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for reachability in each phase (default 60)")
    p.add_argument("--keep-logs", type=Path, metavar="DIR",
                   help="copy each lab's controller log into DIR before taking it down")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each lab, wait up to S seconds until no other lab is up and "
                        "the CPUs are idle (default: only note how busy they are)")
    p.add_argument("--attempts", type=int, default=1, metavar="N",
                   help="run a size again (up to N times in all) when other processes used "
                        "the CPUs while it converged (default 1: report it as disturbed)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sweep == (args.hypervisors is not None):
        parser.error("give either --hypervisors H or --sweep")
    sizes = list(SWEEP) if args.sweep else [args.hypervisors]
    if any(not 2 <= h <= 29 for h in sizes) or args.vms < 1 or args.migrations < 1 \
            or args.attempts < 1:
        parser.error("need 2 <= --hypervisors <= 29, --vms >= 1, --migrations >= 1 and "
                     "--attempts >= 1")
    if os.geteuid() != 0:
        print("convergence: needs root (the lab builds namespaces and runs OVS)",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # the lab goes down on SIGTERM too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    command = " ".join(shlex.quote(a) for a in
                       ["python", "-m", "benchmarks.convergence", *(sys.argv[1:]
                                                                    if argv is None else argv)])
    facts = machine_facts()
    results: list[dict[str, Any]] = []
    try:
        for h in sizes:
            for attempt in range(1, args.attempts + 1):
                busy = wait_for_quiet(args.wait_quiet)
                run = Run(h, args.vms, args.migrations, args.timeout, args.keep_logs)
                result = {**run.execute(), "cpu_busy_pct_before": busy, "attempt": attempt,
                          "machine": facts, "command": command}
                if not result["disturbed"] or attempt == args.attempts:
                    break
                say(f"H={h}: other processes used {result['foreign_cpu_converge_s']} s CPU "
                    f"while converging ({'; '.join(result['foreign_busiest'])}): again")
            results.append(result)
    except KeyboardInterrupt:
        say("interrupted; the lab was taken down")
        return 130
    except (BenchError, LabError, ProbeError, shell.CommandFailed, OSError) as exc:
        say(f"FAILED: {exc}")
        if results and not args.json:
            print(render_table(results))
        return 1
    leaky = [r["hypervisors"] for r in results if r["leaks"]]
    if args.json:
        out: Any = results if args.sweep else results[0]
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(render(r))
        if args.sweep:
            print()
            print(render_table(results))
        print(f"\nmachine: {facts['cpu']}, {facts['nproc']} CPUs, kernel {facts['kernel']}, "
              f"{facts['ovs']}, Python {facts['python']}")
    if leaky:
        say(f"FAILED: isolation broken: another tenant's VM answered (H = {leaky}); "
            "see leak_examples in --json")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
