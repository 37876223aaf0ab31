"""The phases a run measures on a lab whose hypervisors are up: convergence, cross-tenant
refusal, one more VM (the moves are in `migration`; Refusal: see the package's docstring).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.convergence.base import BenchError
from benchmarks.convergence.context import Bench, pairs_of
from benchmarks.convergence.machine import cpu_sample, phase_cpu
from benchmarks.convergence.timeline import timeline
from benchmarks.convergence.vms import Vm, plug_all_at_once
from benchmarks.probe_icmp import INTERVAL_S, ProbeVm

WINDOW_ECHOES = 5
WINDOW_LINGER_S = 0.2
WINDOW_PAIRS = 64  # cross-tenant pairs probed at a time


@dataclass(frozen=True)
class Converged:
    same_network_pairs: int
    converge_s: float
    wall0: float  # time.time() at t0, to read the controller's log
    t0: float
    plug_done: dict[str, float]  # hypervisor: its plug transaction done (monotonic)
    firsts: list[float]  # first reply of each pair (monotonic)
    cpu: dict[str, Any]  # who used the CPUs while converging (machine.phase_cpu)


def converge(bench: Bench, vms: list[Vm]) -> Converged:
    """t0, every hypervisor plugs its VMs in one transaction, until every same-network pair
    of VMs has had its first echo reply."""
    before = cpu_sample(bench.controller_pid)
    same = pairs_of(vms, same=True)
    bench.log(f"binding {len(vms)} VMs; probing {len(same)} same-network pairs")
    session = bench.prober.until_answered((a.probe, b.probe) for a, b in same)
    time.sleep(2 * INTERVAL_S)  # the probes (and the VMs' ARP) are running before t0
    wall0 = time.time()
    by_hv: dict[str, list[Vm]] = {}
    for vm in vms:
        by_hv.setdefault(vm.state.hypervisor, []).append(vm)
    t0, plug_done = plug_all_at_once(bench.lab, by_hv)
    bench.wait_session(session, "every same-network pair to answer")
    firsts = [f for f in session.first_replies().values() if f is not None]
    converge_s = max(firsts) - t0
    after = cpu_sample(bench.controller_pid)
    cpu = phase_cpu(before, after, bench.is_lab_ovs, bench.controller_pid,
                    time.monotonic() - t0)
    bench.log(f"converged in {converge_s * 1000:.1f} ms; checking cross-tenant refusal")
    return Converged(len(same), converge_s, wall0, t0, plug_done, firsts, cpu)


def converge_timeline(bench: Bench, conv: Converged) -> dict[str, Any]:
    return timeline(bench.controller_log, conv.wall0, conv.t0, conv.plug_done.values(),
                    conv.firsts)


def refusal(bench: Bench, vms: list[Vm]) -> dict[str, Any]:
    """Every cross-tenant pair: WINDOW_ECHOES echoes; no reply from the other tenant.

    In chunks of WINDOW_PAIRS pairs: ARP for an address that exists nowhere in the
    sender's network is flooded to every hypervisor hosting it, and all pairs at once
    would overload the userspace switches, whose drops could then pass for refusals.
    Pairs whose address exists in the sender's own network are the positive control:
    each must be answered, by the sender's own-network VM with that address.
    """
    prober = bench.prober
    every = pairs_of(vms, same=False)
    cross = [(a, b) for a, b in every if a.state.ip != b.state.ip]
    own_ips = {(vm.state.network, vm.state.ip) for vm in vms}
    overlapping = {(a.iface_id, b.iface_id) for a, b in cross
                   if (a.state.network, b.state.ip) in own_ips}
    leaks_before = len(prober.leaks)
    echoes, own_replies, controls = 0, 0, set()
    for i in range(0, len(cross), WINDOW_PAIRS):
        chunk = cross[i:i + WINDOW_PAIRS]
        session = prober.window(((a.probe, b.probe) for a, b in chunk),
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
        "replies_from_other_tenant": len(prober.leaks) - leaks_before,
        "address_exists_in_own_network": len(overlapping),
        "of_those_answered_in_own_network": len(controls),
        "own_network_replies": own_replies,
    }


def add_vm(bench: Bench, vms: list[Vm], extra: Vm) -> dict[str, Any]:
    """One more VM bound at runtime, until it has a reply from every same-network peer and
    every peer has one from it."""
    peers = [v for v in vms if v.state.network == extra.state.network]
    pairs = [(extra.probe, p.probe) for p in peers] + [(p.probe, extra.probe) for p in peers]
    bench.log(f"binding one more VM ({extra.name} on {extra.state.hypervisor}), "
              f"{len(pairs)} pairs")
    plugged = plug_until_answered(bench, extra, pairs, f"{extra.name} and its peers to answer")
    bench.log(f"{extra.name} reachable both ways in {plugged.seconds * 1000:.1f} ms")
    return {"add_vm_s": round(plugged.seconds, 4), "vm": extra.name,
            "hypervisor": extra.state.hypervisor, "pairs": len(pairs),
            "timeline": plugged.timeline}


@dataclass(frozen=True)
class Plugged:
    seconds: float  # from the plug until the last pair's first reply
    firsts: list[float]  # each pair's first reply (monotonic)
    timeline: dict[str, Any]


def plug_until_answered(bench: Bench, vm: Vm, pairs: list[tuple[ProbeVm, ProbeVm]],
                        what: str) -> Plugged:
    """Probe the pairs, plug the VM (t0 just before), until every pair has had a reply."""
    session = bench.prober.until_answered(pairs)
    time.sleep(2 * INTERVAL_S)  # the probes (and the VMs' ARP) are running before t0
    wall0 = time.time()
    t0, done = plug_all_at_once(bench.lab, {vm.state.hypervisor: [vm]})
    bench.wait_session(session, what)
    firsts = [f for f in session.first_replies().values() if f is not None]
    seconds = max(firsts) - t0
    bench.wait_synced()
    return Plugged(seconds, [f - t0 for f in firsts],
                   timeline(bench.controller_log, wall0, t0, done.values(), firsts))
