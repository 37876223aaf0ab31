"""The lab's topology file and VM plugging: VMs plugged as libvirt does (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dove_lab import nodes
from dove_lab.state import VmState
from dove_lab.topology import load_topology
from ovsdb_agent import contract
from ryu_dove.policy import ConfigError, load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy([str(ROOT / "policies" / "example.yaml")])


def topology(tmp_path: Path, vm: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(f"hypervisors: [hv1]\nvms:\n  - {vm}\n")
    return path


def test_a_vm_may_be_plugged_as_libvirt_does_with_its_iface_id(tmp_path) -> None:
    topo = load_topology(str(topology(tmp_path, "{name: vm1, hypervisor: hv1, network: "
                                                "acme/web, ip: 198.51.100.10, libvirt: true, "
                                                "iface-id: web-1}")), POLICY)
    (vm,) = topo.vms
    assert (vm.plug, vm.iface_id) == ("libvirt", "web-1")


def test_a_bad_libvirt_key_is_reported_where_it_is(tmp_path) -> None:
    path = topology(tmp_path, "{name: vm1, hypervisor: hv1, network: acme/web, "
                              "ip: 198.51.100.10, libvirt: yes please}")
    with pytest.raises(ConfigError) as err:
        load_topology(str(path), POLICY)
    assert f"{path}:3:" in str(err.value) and "libvirt is true" in str(err.value)


def test_libvirt_plugging_writes_only_what_libvirt_writes() -> None:
    vm = VmState("vm1", "hv1", "acme/web", "198.51.100.10", 26, "198.51.100.1",
                 "02:00:00:00:00:01", "dove-x.vm1", "vif-vm1", plug="libvirt", iface_id="web-1")
    ids = nodes.vif_ids(vm)
    assert set(ids) == {contract.IFACE_ID, contract.ATTACHED_MAC, contract.IFACE_STATUS,
                        contract.VM_ID}
    assert ids[contract.IFACE_ID] == "web-1" and ids[contract.IFACE_STATUS] == "active"
    assert nodes.vif_ids(vm)[contract.VM_ID] == ids[contract.VM_ID]  # stable per VM
    plain = nodes.vif_ids(VmState(**{**vm.__dict__, "plug": "dove", "iface_id": ""}))
    assert plain[contract.NETWORK] == "acme/web" and plain[contract.IFACE_ID] == "vm1"


def test_a_learning_vm_is_plugged_without_dove_ips(tmp_path) -> None:
    topo = load_topology(str(topology(tmp_path, "{name: vm1, hypervisor: hv1, network: "
                                                "acme/web, ip: 198.51.100.10, learn: true}")),
                         POLICY)
    (spec,) = topo.vms
    assert spec.plug == "learn"
    vm = VmState("vm1", "hv1", "acme/web", "198.51.100.10", 26, "198.51.100.1",
                 "02:00:00:00:00:01", "dove-x.vm1", "vif-vm1", plug="learn")
    ids = nodes.vif_ids(vm)
    assert contract.IPS not in ids and ids[contract.NETWORK] == "acme/web"


def test_learning_and_libvirt_together_are_refused_where_they_are(tmp_path) -> None:
    path = topology(tmp_path, "{name: vm1, hypervisor: hv1, network: acme/web, "
                              "ip: 198.51.100.10, libvirt: true, learn: true}")
    with pytest.raises(ConfigError) as err:
        load_topology(str(path), POLICY)
    assert f"{path}:3:" in str(err.value) and "learns its addresses already" in str(err.value)
