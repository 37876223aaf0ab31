"""The benchmark's VMs: where each sits and its address, building them unplugged, plugging them.

Addresses and binding: see the package's docstring. The VMs are made by
`dove_lab.nodes.create_vm(..., plug=False)` and plugged later, when the benchmark's clock runs.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.convergence.base import NETWORKS, POLICY, BenchError
from benchmarks.probe_icmp import ProbeVm
from dove_lab import nodes
from dove_lab.lab import Lab
from dove_lab.state import HypervisorState, VmState
from dove_lab.topology import default_mac
from ovsdb_agent import contract
from ryu_dove.policy import Network, Policy

FIRST_HOST = 10
# Fast ARP: a failed entry is restarted by the next echo at once, and stops broadcasting
# 200 ms after the probes stop.
ARP_SYSCTLS = ("retrans_time_ms=20", "mcast_solicit=10", "ucast_solicit=3", "app_solicit=0")


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


def build_unplugged(vm: Vm, hv_netns: str, neighbours: Iterable[Vm] = ()) -> None:
    """The lab's VM, not plugged; plus fast ARP timers, a TTL mark and static neighbours.

    Named `dove-<lab>.<vm>` like the lab's own VMs but not recorded in its state.json (that
    needs Lab internals): `Lab.down()` removes them by the lab's namespace prefix.
    """
    st = vm.state
    nodes.create_vm(st, hv_netns, plug=False)
    # Per interface: a namespace other than the root one has no neigh/default to set (its
    # devices copy the machine-wide defaults, which are not ours to change).
    settings = [f"net.ipv4.neigh.eth0.{s}" for s in ARP_SYSCTLS]
    # The networks are IPv4: no router solicitations or MLD reports from a pre-plugged
    # incarnation, which would make its standby port take over before the old one goes.
    settings.append("net.ipv6.conf.eth0.disable_ipv6=1")
    if vm.ttl is not None:
        settings.insert(0, f"net.ipv4.ip_default_ttl={vm.ttl}")
    nodes.sysctl(st.netns, *settings)
    batch = "".join(f"neigh replace {n.state.ip} lladdr {n.state.mac} dev eth0 nud reachable\n"
                    for n in neighbours)
    if batch:
        subprocess.run(["ip", "-n", st.netns, "-batch", "-"], input=batch, text=True,
                       check=True, capture_output=True)


def vif_ids(vm: Vm) -> dict[str, str]:
    return {**nodes.vif_ids(vm.state), contract.IFACE_ID: vm.iface_id}


def plug(lab: Lab, hv: HypervisorState, vms: list[Vm]) -> None:
    """Every given VM port of one hypervisor in ONE OVSDB transaction (waits for vswitchd).

    Port and the contract's `external_ids`, as `VSwitch.plug_vif` does for one port.
    """
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
