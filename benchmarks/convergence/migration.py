"""Moving one VM back and forth between two hypervisors, timed from the unplug until a
third VM of its network gets a reply from it again (Migration: see the package's docstring);
and live migrations of the same VM (standby port, switch-over, announcement), with the
packets a 20 ms ping stream from that third VM lost across each.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.convergence.base import LIVE, NETWORKS, PREPLUGGED, UNPLUG_PLUG, BenchError
from benchmarks.convergence.context import Bench
from benchmarks.convergence.controller import endpoints_check, standby_check, wait_until
from benchmarks.convergence.timeline import timeline
from benchmarks.convergence.vms import Vm, build_unplugged, make_vm, plug, unplug, vif_ids
from benchmarks.probe_icmp import INTERVAL_S
from dove_lab import migration

STREAM_S = 0.02  # the observer's ping stream during a live migration

INCARNATION_TTL = 100  # + move number: the new incarnation's IP TTL


@dataclass(frozen=True)
class Move:
    number: int  # from 1
    kind: str  # UNPLUG_PLUG or PREPLUGGED
    moved: Vm  # the first incarnation: its name and iface-id
    current: Vm  # the incarnation that leaves
    nxt: Vm  # the incarnation that arrives
    observer: Vm

    @property
    def src(self) -> str:
        return self.current.state.hypervisor

    @property
    def dst(self) -> str:
        return self.nxt.state.hypervisor


def migrations(bench: Bench, vms: list[Vm], count: int) -> list[dict[str, Any]]:
    """`count` moves as the issue says (unplug, then plug), then `count` pre-plugged ones,
    then `count` live migrations of the last incarnation."""
    moved = next(v for v in vms if v.state.network == NETWORKS[0])
    ends = (moved.state.hypervisor, bench.hv_names[-1])
    mates = [v for v in vms if v.state.network == moved.state.network and v is not moved]
    observer = sorted(mates, key=lambda v: (v.state.hypervisor in ends, v.name))[0]
    current, results = moved, []
    kinds = [UNPLUG_PLUG] * count + [PREPLUGGED] * count + [LIVE] * count
    for i, kind in enumerate(kinds, start=1):
        dst = ends[1] if current.state.hypervisor == ends[0] else ends[0]
        if kind == LIVE:
            nxt = replace(current, state=replace(current.state, hypervisor=dst))
            results.append(live_move(bench, Move(i, kind, moved, current, nxt, observer)))
        else:
            nxt = incarnation(bench, moved, i, dst, mates)
            results.append(timed_move(bench, Move(i, kind, moved, current, nxt, observer)))
        current = nxt
    return results


def incarnation(bench: Bench, moved: Vm, number: int, dst: str, mates: list[Vm]) -> Vm:
    """The moved VM's next incarnation on `dst`, built but not plugged."""
    nxt = make_vm(bench.lab, bench.policy, f"{moved.name}m{number}", dst, moved.state.network,
                  moved.state.ip, iface_id=moved.iface_id, mac=moved.state.mac,
                  ttl=INCARNATION_TTL + number)
    build_unplugged(nxt, bench.hypervisors[dst].netns, neighbours=mates)
    return nxt


def prepare(bench: Bench, move: Move) -> None:
    """The leaving incarnation answers the observer; a pre-plugged move plugs the arriving
    one, which the controller must refuse while the leaving one holds the MAC."""
    check = bench.prober.until_answered([(move.observer.probe, move.current.probe)])
    if not check.wait(5):
        raise BenchError(f"before move {move.number}: {move.observer.name} gets no reply from "
                         f"{move.current.name} on {move.src}")
    if move.kind == PREPLUGGED:
        plug(bench.lab, bench.hypervisors[move.dst], [move.nxt])
        wait_until(f"{move.nxt.name} standing by while {move.current.name} is active", 10,
                   standby_check(bench.api, move.nxt.state.port, move.dst))
    bench.wait_synced()


def timed_move(bench: Bench, move: Move) -> dict[str, Any]:
    """t0, unplug the leaving port (then plug the arriving one), until the observer gets a
    reply from the arriving incarnation."""
    prepare(bench, move)
    hvs = bench.hypervisors
    observer, moved = move.observer, move.moved
    session = bench.prober.until_answered([(observer.probe, move.nxt.probe)])
    time.sleep(2 * INTERVAL_S)  # the observer is probing before t0
    wall0, t0 = time.time(), time.monotonic()
    unplug(bench.lab, hvs[move.src], move.current)
    unplugged = time.monotonic()
    if move.kind == UNPLUG_PLUG:
        plug(bench.lab, hvs[move.dst], [move.nxt])
    plugged = time.monotonic()
    bench.wait_session(session, f"{observer.name} to reach {moved.name} on {move.dst}")
    first = session.first_replies()[(observer.iface_id, moved.iface_id)]
    assert first is not None
    bench.wait_synced()
    wait_until(f"{move.nxt.name} bound", 10, endpoints_check(bench.api, {move.nxt.state.port}))
    result: dict[str, Any] = {
        "kind": move.kind, "migrate_s": round(first - t0, 4), "vm": moved.name,
        "from": move.src, "to": move.dst, "observer": observer.name,
        "observer_hypervisor": observer.state.hypervisor,
        "unplug_txn_s": round(unplugged - t0, 4),
        "plug_txn_done_s": round(plugged - t0, 4) if move.kind == UNPLUG_PLUG else None,
        "timeline": timeline(bench.controller_log, wall0, t0, [unplugged, plugged], [first]),
    }
    bench.log(f"move {move.number} ({move.kind}): {moved.name} {move.src} -> {move.dst}: "
              f"{observer.name} reaches it again after {(first - t0) * 1000:.1f} ms")
    return result



def live_move(bench: Bench, move: Move) -> dict[str, Any]:
    """The destination port plugged while the VM runs; t0, the VM switched over (it
    announces itself with a RARP), until the controller shows it active there; and the
    packets the observer's 20 ms ping stream lost across it."""
    prepare(bench, move)
    vm, hvs = move.current, bench.hypervisors
    migration.prepare(vm.state, hvs[move.dst].netns, bench.lab.vswitch(hvs[move.dst]),
                      vif_ids(vm))
    wait_until(f"{vm.name} standing by on {move.dst}", 10,
               standby_check(bench.api, vm.state.port, move.dst))
    bench.wait_synced()  # as after a real migration's memory copy
    stream = subprocess.Popen(["ip", "netns", "exec", move.observer.state.netns, "ping", "-n",
                               "-q", "-i", str(STREAM_S), vm.state.ip],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with migration.Announcer(vm.state) as announce:
            time.sleep(0.5)
            wall0, t0 = time.time(), time.monotonic()
            migration.switch_over(vm.state, announce)
            switched = time.monotonic()
            wait_until(f"{vm.name} active on {move.dst}", 10,
                       standby_check(bench.api, vm.state.port, move.dst, standby=False),
                       interval=0.002)
            active = time.monotonic()
            time.sleep(0.5)
    finally:
        stream.send_signal(signal.SIGINT)
        out, _ = stream.communicate(timeout=10)
    sent, received = _stream_counts(out)
    migration.finish(vm.state, hvs[move.src].netns, bench.lab.vswitch(hvs[move.src]))
    bench.wait_synced()
    result: dict[str, Any] = {
        "kind": LIVE, "migrate_s": round(active - t0, 4), "vm": move.moved.name,
        "from": move.src, "to": move.dst, "observer": move.observer.name,
        "observer_hypervisor": move.observer.state.hypervisor,
        "switch_over_s": round(switched - t0, 4), "stream_sent": sent,
        "stream_lost": sent - received,
        "timeline": timeline(bench.controller_log, wall0, t0, [switched], [active]),
    }
    bench.log(f"move {move.number} (live): {vm.name} {move.src} -> {move.dst}: active after "
              f"{(active - t0) * 1000:.1f} ms; {move.observer.name}'s 20 ms stream lost "
              f"{sent - received} of {sent}")
    return result


def _stream_counts(out: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if m is None:
        raise BenchError(f"the observer's ping stream said: {out[-300:]!r}")
    return int(m[1]), int(m[2])
