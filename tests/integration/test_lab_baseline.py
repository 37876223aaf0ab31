"""The lab with real OVS and no controller: plumbing, tunnels, plugging and clean teardown."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from dove_lab import nodes
from dove_lab.lab import Lab, LabError
from dove_lab.probe import Fate
from ovsdb_agent import contract
from ovsdb_agent.vswitch import VSwitch
from tests.integration.conftest import EXAMPLE_POLICY, lab_name
from tests.integration.helpers import fate, leftovers

# Unique addresses: the baseline has no isolation, so overlapping tenants would answer twice.
SIX_VMS = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
  - {name: a3, hypervisor: hv3, network: acme/web, ip: 198.51.100.12}
  - {name: g1, hypervisor: hv1, network: globex/web, ip: 198.51.100.20}
  - {name: g2, hypervisor: hv2, network: globex/web, ip: 198.51.100.21}
  - {name: g3, hypervisor: hv3, network: globex/web, ip: 198.51.100.22}
"""


def test_same_network_vms_reach_each_other_across_hypervisors(make_lab, write_topology):
    lab = make_lab(write_topology(SIX_VMS))
    state = lab.state()
    for net in ("acme/web", "globex/web"):
        members = sorted(v.name for v in state.vms.values() if v.network == net)
        for src, dst in itertools.permutations(members, 2):
            assert state.vms[src].hypervisor != state.vms[dst].hypervisor
            assert fate(lab, src, dst) is Fate.REACHES, f"{src} -> {dst}"


def test_vm_ports_carry_the_hypervisor_contract(make_lab, write_topology):
    lab = make_lab(write_topology(SIX_VMS))
    state = lab.state()
    vm = state.vms["a2"]
    with VSwitch(lab.ovs(state.hypervisors["hv2"]).db) as vswitch:
        ids = {i["name"]: i["external_ids"] for i in vswitch.interfaces()}
        system = vswitch.system_ids()
    assert ids[vm.port] == {contract.IFACE_ID: "a2", contract.ATTACHED_MAC: vm.mac,
                            contract.NETWORK: "acme/web", contract.IPS: "198.51.100.11"}
    assert system[contract.TEP_IP] == state.hypervisors["hv2"].tep_ip
    assert system[contract.HYPERVISOR] == "hv2"


def test_down_leaves_nothing_three_times_in_a_row(write_topology, example_policy):
    from dove_lab.topology import load_topology

    topology = load_topology(write_topology(SIX_VMS), example_policy)
    name = lab_name()
    lab = Lab(name)
    try:
        for _ in range(3):
            lab.up(topology, [EXAMPLE_POLICY], example_policy, controller=False)
            assert leftovers(name), "the lab should exist while up"
            assert fate(lab, "a1", "a3") is Fate.REACHES
            lab.down()
            assert leftovers(name) == []
        assert lab.down() == []  # idempotent: nothing left to remove
    finally:
        lab.down()


def test_failed_up_removes_what_it_created(write_topology, example_policy, monkeypatch):
    from dove_lab.topology import load_topology

    topology = load_topology(write_topology(SIX_VMS), example_policy)
    real_create_vm = nodes.create_vm
    calls = []

    def failing_create_vm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("injected failure while plugging the third VM")
        return real_create_vm(*args, **kwargs)

    monkeypatch.setattr(nodes, "create_vm", failing_create_vm)
    name = lab_name()
    try:
        with pytest.raises(LabError, match="injected failure.*everything it had created"):
            Lab(name).up(topology, [EXAMPLE_POLICY], example_policy, controller=False)
        assert leftovers(name) == []
    finally:
        Lab(name).down()


def test_runtime_changes(make_lab, write_topology):
    lab = make_lab(write_topology("""
        hypervisors: [hv1, hv2]
        vms:
          - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
    """))
    lab.add_hypervisor("hv3")
    lab.add_vm("a3", "hv3", "acme/web", "198.51.100.13")
    assert fate(lab, "a1", "a3") is Fate.REACHES
    assert fate(lab, "a3", "a1") is Fate.REACHES
    lab.add_vm("a2", "hv2", "acme/web", "198.51.100.12")
    assert fate(lab, "a2", "a3") is Fate.REACHES
    lab.del_vm("a2")
    assert "a2" not in lab.state().vms
    hv3_netns = lab.state().hypervisors["hv3"].netns
    assert lab.del_hypervisor("hv3") == ["a3"]
    assert hv3_netns not in nodes.netns_list()
    assert "a3" not in lab.state().vms
    with pytest.raises(LabError, match="no hypervisor 'hv9'"):
        lab.add_vm("a9", "hv9", "acme/web", "198.51.100.19")
    with pytest.raises(LabError, match="outside acme/web's subnet"):
        lab.add_vm("a9", "hv1", "acme/web", "198.51.100.200")
    with pytest.raises(LabError, match="already a1's address"):
        lab.add_vm("a9", "hv1", "acme/web", "198.51.100.10")


def test_two_labs_side_by_side(make_lab, write_topology):
    topo = write_topology("""
        hypervisors: [hv1, hv2]
        vms:
          - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
          - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
    """)
    first, second = make_lab(topo), make_lab(topo)
    assert first.status()["management"] != second.status()["management"]
    second.down()
    assert leftovers(second.name) == []
    assert fate(first, "a1", "a2") is Fate.REACHES


def dove_lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dove_lab.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_drives_a_lab(write_topology):
    name = lab_name()
    topo = write_topology("""
        hypervisors: [hv1, hv2]
        vms:
          - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
          - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
    """)
    try:
        up = dove_lab("up", "--name", name, "--topology", topo, "--policy", EXAMPLE_POLICY,
                      "--no-controller")
        assert up.returncode == 0, up.stderr
        status = json.loads(dove_lab("status", "--name", name).stdout)
        assert sorted(status["vms"]) == ["a1", "a2"]
        assert dove_lab("ping", "--name", name, "a1", "a2").returncode == 0
        assert dove_lab("ping", "--name", name, "a1", "198.51.100.11").returncode == 0
        assert dove_lab("ping", "--name", name, "a1", "198.51.100.99",
                        "--timeout", "1").returncode == 1
        out = dove_lab("exec", "--name", name, "a2", "--", "ip", "-o", "addr", "show", "eth0")
        assert "198.51.100.11/26" in out.stdout
        matrix = json.loads(dove_lab("matrix", "--name", name, "--json").stdout)
        assert matrix == {"a1": {"a2": "reaches"}, "a2": {"a1": "reaches"}}
        again = dove_lab("up", "--name", name, "--topology", topo, "--policy", EXAMPLE_POLICY)
        assert again.returncode == 1 and "exists already" in again.stderr
    finally:
        down = dove_lab("down", "--name", name)
    assert down.returncode == 0
    assert leftovers(name) == []


def test_cli_reports_topology_errors_with_positions(write_topology):
    topo = write_topology("""
        hypervisors: [hv1, hv2]
        vms:
          - {name: a1, hypervisor: hv1, network: acme/nope, ip: 198.51.100.10}
          - {name: a2, hypervisor: hv7, network: acme/web, ip: 203.0.113.5}
          - {name: a3, hypervisor: hv1, network: acme/web, ip: 198.51.100.12}
          - {name: a4, hypervisor: hv2, network: acme/web, ip: 198.51.100.12}
    """)
    name = lab_name()
    result = dove_lab("up", "--name", name, "--topology", topo, "--policy", EXAMPLE_POLICY)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{topo}:4:") and "unknown network 'acme/nope'" in line
               for line in lines), lines
    assert any(f"{topo}:5:" in line and "unknown hypervisor 'hv7'" in line for line in lines)
    assert any(f"{topo}:5:" in line and "outside acme/web's subnet" in line for line in lines)
    assert any(f"{topo}:7:" in line and "already a3's address" in line for line in lines)
    assert "Traceback" not in result.stderr
    assert leftovers(name) == []
