"""The controller on real OVS: tenants isolated, networks connected, ARP kept local."""

from __future__ import annotations

import itertools
import subprocess

from dove_lab.lab import Lab
from dove_lab.probe import Fate, ping
from ovsdb_agent import contract
from ovsdb_agent.vswitch import VSwitch
from tests.integration.helpers import (
    api_get,
    fate,
    tcp_name_server,
    tcp_read,
    wait_for,
    wait_in_sync,
)

DEMO = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: vm1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: vm2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
  - {name: vm3, hypervisor: hv3, network: acme/db, ip: 198.51.100.70}
  - {name: vm4, hypervisor: hv1, network: globex/web, ip: 198.51.100.10}
  - {name: vm5, hypervisor: hv2, network: globex/web, ip: 198.51.100.11}
  - {name: vm6, hypervisor: hv3, network: globex/web, ip: 198.51.100.12}
"""


TWO_HVS = """
hypervisors: [hv1, hv2]
vms:
  - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
"""


def assert_full_tunnel_mesh(lab: Lab) -> None:
    """In OVSDB itself: each hypervisor has one owned tunnel to every other, and no more."""
    state = lab.state()
    teps = {hv.name: hv.tep_ip for hv in state.hypervisors.values()}
    for hv in state.hypervisors.values():
        with VSwitch(lab.ovs(hv).db) as vswitch:
            tunnels = {(i["external_ids"].get(contract.REMOTE), i["options"].get("remote_ip"))
                       for i in vswitch.interfaces()
                       if i["external_ids"].get(contract.OWNER) == contract.OWNER_VALUE}
        assert tunnels == {(n, ip) for n, ip in teps.items() if n != hv.name}, hv.name


def reaches_within(lab: Lab, src: str, dst: str, timeout: float = 10.0) -> None:
    wait_for(lambda: fate(lab, src, dst, timeout=1.0) is Fate.REACHES, timeout,
             f"{src} to reach {dst}")


def test_tenants_isolated_and_networks_connected(make_lab, write_topology):
    lab = make_lab(write_topology(DEMO), controller=True)
    wait_in_sync(lab)
    vms = lab.state().vms
    same_net = [(a, b) for a, b in itertools.permutations(sorted(vms), 2)
                if vms[a].network == vms[b].network]
    for src, dst in same_net:
        reaches_within(lab, src, dst)
    for src, dst in itertools.permutations(sorted(vms), 2):
        if vms[src].network.split("/")[0] != vms[dst].network.split("/")[0]:
            assert fate(lab, src, dst, timeout=1.0) in (
                Fate.NO_REPLY, Fate.OTHER_VM, Fate.SAME_ADDRESS), f"{src} -> {dst}"


def test_overlapping_addresses_answer_from_the_right_tenant(make_lab, write_topology):
    lab = make_lab(write_topology(DEMO), controller=True)
    wait_in_sync(lab)
    vms = lab.state().vms
    reaches_within(lab, "vm1", "vm2")
    reaches_within(lab, "vm4", "vm5")
    # Both ask for 198.51.100.11: each gets the MAC of its own tenant's VM.
    for asker, owner in (("vm1", "vm2"), ("vm4", "vm5")):
        neigh = subprocess.run(["ip", "-n", vms[asker].netns, "neigh", "show", "198.51.100.11"],
                               capture_output=True, text=True, check=True).stdout
        assert vms[owner].mac in neigh, (asker, neigh)
    # And the host that answers TCP is the right one too.
    servers = [tcp_name_server(vms[owner].netns, owner) for owner in ("vm2", "vm5")]
    try:
        for asker, owner in (("vm1", "vm2"), ("vm4", "vm5")):
            assert tcp_read(vms[asker].netns, "198.51.100.11") == owner, asker
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_runtime_plug_unplug_and_hypervisor_join(make_lab, write_topology):
    lab = make_lab(write_topology(TWO_HVS), controller=True)
    wait_in_sync(lab)
    reaches_within(lab, "a1", "a2")
    a2 = lab.state().vms["a2"]
    lab.add_hypervisor("hv3")
    lab.add_vm("a3", "hv3", "acme/web", "198.51.100.12")
    reaches_within(lab, "a3", "a1")
    reaches_within(lab, "a2", "a3")
    assert_full_tunnel_mesh(lab)
    lab.del_vm("a2")
    wait_for(lambda: not any(e["iface_id"] == "a2" for e in api_get(lab, "endpoints")), 10,
             "a2 to leave the directory")
    assert not ping(lab.state().vms["a1"], a2.ip, timeout=1.0)  # unplugged: unreachable
    wait_in_sync(lab)
    assert fate(lab, "a1", "a3") is Fate.REACHES
    lab.add_vm("a4", "hv2", "acme/web", "198.51.100.14")
    reaches_within(lab, "a1", "a4")


def test_arp_stays_on_the_hypervisor(make_lab, write_topology):
    """Known addresses are answered by the hypervisor; a request for an address nobody bound
    is not flooded to the other hypervisors either."""
    from tests.integration.underlay import capture_underlay

    lab = make_lab(write_topology(TWO_HVS), controller=True)
    wait_in_sync(lab)
    reaches_within(lab, "a1", "a2")
    vms = lab.state().vms
    with capture_underlay(lab) as packets:
        for vm in ("a1", "a2"):
            subprocess.run(["ip", "-n", vms[vm].netns, "neigh", "flush", "all"], check=True)
        assert fate(lab, "a1", "a2") is Fate.REACHES
        assert fate(lab, "a2", "a1") is Fate.REACHES
        assert not ping(vms["a1"], "198.51.100.50", timeout=1.0)  # bound by no one: ARP fails
    inner = [p.inner_ethertype for p in packets()]
    assert 0x0800 in inner, "the capture should see the tunnelled pings"
    assert 0x0806 not in inner, "ARP crossed the underlay"


def test_hypervisor_leaving_loses_its_tunnels_and_endpoints(make_lab, write_topology):
    lab = make_lab(write_topology("""
        hypervisors: [hv1, hv2, hv3]
        vms:
          - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
          - {name: a3, hypervisor: hv3, network: acme/web, ip: 198.51.100.12}
    """), controller=True)
    wait_in_sync(lab)
    reaches_within(lab, "a1", "a3")
    lab.del_hypervisor("hv3")

    def hv3_forgotten() -> bool:
        tunnels = api_get(lab, "tunnels")
        return (not any(t["remote"] == "hv3" or t["hypervisor"] == "hv3" for t in tunnels)
                and not any(e["hypervisor"] == "hv3" for e in api_get(lab, "endpoints")))

    wait_for(hv3_forgotten, 15, "hv3's tunnels and endpoints to be removed")
    assert_full_tunnel_mesh(lab)
    wait_in_sync(lab)
