"""The routed phase (`--routed`): a VM bound into acme/db while acme/web VMs on the other
hypervisors ping it through their gateway (policies/example.yaml allows ICMP web -> db).

`routed_converge_s` runs from the plug until every such web VM has had its first echo reply
from the db VM's address, routed (the reply's Ethernet source is the gateway MAC); the flows
on each br-int are then counted with routing and rules in place.
"""

from __future__ import annotations

from typing import Any

from benchmarks.convergence.base import BenchError
from benchmarks.convergence.context import Bench
from benchmarks.convergence.machine import flow_counts
from benchmarks.convergence.scenarios import plug_until_answered
from benchmarks.convergence.vms import FIRST_HOST, Vm, host, make_vm
from benchmarks.probe_icmp import ProbeVm
from dove_lab.lab import Lab
from ryu_dove.pipeline.parts.common import GATEWAY_MAC
from ryu_dove.policy import Policy

DB_NETWORK, WEB_NETWORK = "acme/db", "acme/web"


def plan_db_vm(lab: Lab, policy: Policy, hv: str) -> Vm:
    net = policy.network(DB_NETWORK)
    if net is None:
        raise BenchError(f"--routed needs the network {DB_NETWORK} in the policy")
    return make_vm(lab, policy, "vmdb", hv, DB_NETWORK, host(net, FIRST_HOST))


def through_the_gateway(vm: Vm) -> ProbeVm:
    """The VM as a web VM sees it: routed replies come from the gateway MAC."""
    p = vm.probe
    return ProbeVm(p.name, p.netns, p.ip, GATEWAY_MAC, p.network, routed=True)


def routed(bench: Bench, db: Vm, vms: list[Vm]) -> dict[str, Any]:
    """Plug db, until every web VM on another hypervisor gets routed replies from it."""
    webs = [v for v in vms if v.state.network == WEB_NETWORK
            and v.state.hypervisor != db.state.hypervisor]
    if not webs:
        raise BenchError("--routed needs an acme/web VM on another hypervisor than the db VM")
    target = through_the_gateway(db)
    bench.log(f"binding {db.name} into {DB_NETWORK} on {db.state.hypervisor}; "
              f"{len(webs)} web VMs on other hypervisors ping it, routed")
    plugged = plug_until_answered(bench, db, [(w.probe, target) for w in webs],
                                  f"routed replies from {db.name}")
    flows = flow_counts(bench.lab)
    bench.log(f"routed: every web VM gets replies from {db.name} after "
              f"{plugged.seconds * 1000:.1f} ms; flows/hv {sorted(flows.values())}")
    return {"routed_converge_s": round(plugged.seconds, 4), "pairs": len(webs),
            "first_reply_s": round(min(plugged.firsts), 4),
            "flows_per_hv": {"mean": round(sum(flows.values()) / len(flows), 1),
                             "max": max(flows.values()), "min": min(flows.values()),
                             "by_hypervisor": flows},
            "timeline": plugged.timeline}
