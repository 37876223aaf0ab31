"""One size of the benchmark: a fresh lab, every phase measured, the lab always taken down.

The lab (`dove_lab.lab.Lab`, driven only through its public API) comes up with its
hypervisors and the controller but no VM; the run waits until the controller reports every
hypervisor connected and in sync and the tunnel mesh complete, then builds the VMs unplugged
(`Lab.add_vm` plugs in the same step, so its namespace set-up would count as convergence).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.convergence.base import LIVE, POLICY, PREPLUGGED, UNPLUG_PLUG, BenchError, say
from benchmarks.convergence.context import Bench
from benchmarks.convergence.controller import Api, synced_check, wait_until
from benchmarks.convergence.machine import Usage, flow_counts, other_labs, proc_usage
from benchmarks.convergence.migration import migrations
from benchmarks.convergence.routed import plan_db_vm, routed
from benchmarks.convergence.scenarios import Converged, add_vm, converge, converge_timeline, refusal
from benchmarks.convergence.vms import Vm, build_unplugged, plan_vms
from benchmarks.probe_icmp import INTERVAL_S, IcmpProber
from dove_lab import nodes
from dove_lab.lab import Lab
from dove_lab.topology import Topology
from ryu_dove.policy import Policy, load_policy


@dataclass(frozen=True)
class Phases:
    """What the phases of one run measured."""
    vms: list[Vm]
    converged: Converged
    cross_tenant: dict[str, Any]
    converge_timeline: dict[str, Any]
    flows: dict[str, int]  # br-int's flows by hypervisor, once converged
    add_vm: dict[str, Any]
    routed: dict[str, Any] | None  # with --routed
    moves: list[dict[str, Any]]
    controller_end: Usage


@dataclass
class Run:
    hypervisors: int
    per_hv: int
    migrations: int
    timeout: float
    keep_logs: Path | None = None
    with_routing: bool = False
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
        started = time.monotonic()
        others = other_labs(self.lab.name)
        load = os.getloadavg()[0]
        if others:
            self.log(f"note: other labs are up on this machine ({', '.join(others)}); "
                     "they share the CPUs")
        api = self._bring_up()
        lab_up_s = time.monotonic() - started
        bench, vms, extra, db = self._prepare(api, lab_up_s)
        conv = converge(bench, vms)
        cross = refusal(bench, vms)
        bench.wait_synced()
        timeline = converge_timeline(bench, conv)
        flows = flow_counts(self.lab)
        added = add_vm(bench, vms, extra)
        routed_phase = None if db is None else routed(bench, db, [*vms, extra])
        moves = migrations(bench, [*vms, extra], self.migrations)
        phases = Phases(vms, conv, cross, timeline, flows, added, routed_phase, moves,
                        proc_usage(bench.controller_pid))
        return {**self._result(phases, bench.prober),
                "lab_up_s": round(lab_up_s, 2), "other_labs_up": others,
                "load_average_at_start": load, "lab": self.lab.name}

    def _bring_up(self) -> Api:
        """The lab's hypervisors and controller, no VM; until in sync with the tunnel mesh."""
        self.log("bringing the lab up (hypervisors and controller, no VM)")
        self.lab.up(Topology(tuple(self.hv_names)), [str(POLICY)], self.policy,
                    controller=True, connect_timeout=60.0,
                    # every committed update logged, for the timelines
                    controller_args=["--debug=ryu_dove.openflow.reconciler"])
        api = Api(self.lab)
        wait_until("hypervisors in sync and the tunnel mesh", 60,
                   synced_check(api, self.hv_names))
        return api

    def _prepare(self, api: Api, lab_up_s: float) -> tuple[Bench, list[Vm], Vm, Vm | None]:
        """The VMs built unplugged, the prober on them, every OVSDB connection open."""
        lab = self.lab
        status = lab.status()
        hvs = lab.state().hypervisors
        vms, extra = plan_vms(lab, self.policy, self.hv_names, self.per_hv)
        db = plan_db_vm(lab, self.policy, self.hv_names[0]) if self.with_routing else None
        unplugged = [*vms, extra, *([db] if db else [])]
        self.log(f"lab up in {lab_up_s:.1f} s; creating {len(unplugged)} VM namespaces "
                 "(not plugged)")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda v: build_unplugged(v, hvs[v.state.hypervisor].netns),
                          unplugged))
        self.prober = prober = IcmpProber(INTERVAL_S)
        for vm in unplugged:
            prober.add_vm(vm.probe)
        for hv in hvs.values():
            lab.vswitch(hv)  # open every OVSDB connection before t0: opening one is not timed
        bench = Bench(lab, self.policy, api, self.hv_names, hvs,
                      int(status["controller"]["pid"]), str(status["controller"]["log"]),
                      prober, self.timeout, self.keep_logs, self.log)
        bench.wait_synced()
        return bench, vms, extra, db

    def _result(self, p: Phases, prober: IcmpProber) -> dict[str, Any]:
        end, leaks = p.controller_end, prober.leaks
        return {
            "hypervisors": self.hypervisors,
            "vms_per_hypervisor": self.per_hv,
            "vms": len(p.vms),
            "same_network_pairs": p.converged.same_network_pairs,
            "converge_s": round(p.converged.converge_s, 4),
            "add_vm_s": p.add_vm["add_vm_s"],
            **move_figures(p.moves),
            "flows_per_hv": {"mean": round(statistics.mean(p.flows.values()), 1),
                             "max": max(p.flows.values()), "min": min(p.flows.values()),
                             "by_hypervisor": p.flows},
            "controller_cpu_s": round(end.cpu_s, 3),
            **p.converged.cpu,
            "controller_rss_mb": round(end.rss_mb, 1),
            "controller_peak_rss_mb": round(end.hwm_mb, 1),
            "leaks": len(leaks),
            "leak_examples": [vars(x) for x in leaks[:5]],
            "cross_tenant": p.cross_tenant,
            "converge_timeline": p.converge_timeline,
            "add_vm": p.add_vm,
            **({} if p.routed is None else {
                "routed_converge_s": p.routed["routed_converge_s"],
                "routed_flows_per_hv": p.routed["flows_per_hv"],
                "routed": p.routed}),
            "migrations": p.moves,
            "probe": {"interval_s": INTERVAL_S, **prober.stats},
        }


def median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def move_figures(moves: list[dict[str, Any]]) -> dict[str, Any]:
    migrate = [m["migrate_s"] for m in moves if m["kind"] == UNPLUG_PLUG]
    preplugged = [m["migrate_s"] for m in moves if m["kind"] == PREPLUGGED]
    live = [m for m in moves if m["kind"] == LIVE]
    return {
        "migrate_s": migrate,
        "migrate_s_median": median(migrate),
        "migrate_s_max": max(migrate),
        "migrate_preplugged_s": preplugged,
        "migrate_preplugged_s_median": median(preplugged),
        "migrate_live_s": [m["migrate_s"] for m in live],
        "migrate_live_s_median": median([m["migrate_s"] for m in live]),
        "migrate_live_lost": [m["stream_lost"] for m in live],
        "migrate_live_lost_max": max((m["stream_lost"] for m in live), default=None),
    }
