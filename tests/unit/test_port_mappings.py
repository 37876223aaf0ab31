"""Port mappings: VM ports plugged by unmodified libvirt or os-vif (iface-id, attached-mac,
iface-status, vm-id and nothing of ours) bound by the policy (docs/policy.md, "Port
mappings"); the rest of a hypervisor's ports are judged as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory import MemoryDirectory
from ryu_dove.directory.bindings import resolve
from ryu_dove.policy import Policy, load_policy

POLICY_TEXT = """
tenants:
  acme:
    networks:
      web: {vni: 5001, subnet: 198.51.100.0/26}
      db: {vni: 5002, subnet: 198.51.100.64/26}
    ports:
      - {iface-id: "web-*", network: web}
      - {iface-id: "web-special", network: db}
      - {vm-id: "7d2f1c3b-0a4e-4b8e-9c6d-5e4f3a2b1c0d", network: db}
      - {iface-id: "shared-*", network: web}
  globex:
    networks:
      web: {vni: 6001, subnet: 198.51.100.0/26}
    ports:
      - {iface-id: "shared-[0-9]*", network: web}
"""
VM_UUID = "7d2f1c3b-0a4e-4b8e-9c6d-5e4f3a2b1c0d"


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_TEXT)
    return load_policy([str(path)])


def libvirt_port(name: str, ofport: int, mac: str, iface_id: str = "",
                 vm_id: str = "", **more: str) -> PortInfo:
    """As libvirt plugs a port: these four keys only (the empty ones left out)."""
    ids = {contract.IFACE_ID: iface_id, contract.ATTACHED_MAC: mac,
           contract.IFACE_STATUS: "active", contract.VM_ID: vm_id, **more}
    return PortInfo(name, ofport, "", tuple(sorted((k, v) for k, v in ids.items() if v)), (),
                    None)


def judge(policy: Policy, *ports: PortInfo):
    return resolve(policy, MemoryDirectory(), "hv1", ports)


def test_a_libvirt_port_lands_in_its_network_by_pattern_with_no_addresses(policy) -> None:
    (ep,), refused = judge(policy, libvirt_port("vnet0", 3, "52:54:00:AB:CD:01", "web-17",
                                                VM_UUID.replace("7", "8")))
    assert refused == []
    assert (ep.network, ep.mac, ep.ips, ep.iface_id, ep.port, ep.ofport) == (
        "acme/web", "52:54:00:ab:cd:01", (), "web-17", "vnet0", 3)


def test_an_exact_id_wins_over_a_pattern(policy) -> None:
    (ep,), _ = judge(policy, libvirt_port("vnet0", 3, "52:54:00:00:00:02", "web-special"))
    assert ep.network == "acme/db"


def test_a_domain_s_ports_are_mapped_by_its_vm_id(policy) -> None:
    (ep,), _ = judge(policy, libvirt_port("vnet1", 4, "52:54:00:00:00:03", "anything", VM_UUID))
    assert ep.network == "acme/db"


def test_a_port_no_mapping_names_is_not_ours(policy) -> None:
    assert judge(policy, libvirt_port("vnet2", 5, "52:54:00:00:00:04", "db-1")) == ([], [])
    assert judge(policy, libvirt_port("vnet3", 6, "52:54:00:00:00:05")) == ([], [])


def test_mappings_that_disagree_refuse_the_port_and_say_which(policy) -> None:
    endpoints, (refusal,) = judge(policy, libvirt_port("vnet4", 7, "52:54:00:00:00:06",
                                                       "shared-1"))
    assert endpoints == [] and refusal.iface_id == "shared-1"
    assert refusal.reason.startswith("port mappings disagree: ")
    assert "acme: iface-id 'shared-*' -> web" in refusal.reason
    assert "globex: iface-id 'shared-[0-9]*' -> web" in refusal.reason
    (ep,), _ = judge(policy, libvirt_port("vnet4", 7, "52:54:00:00:00:06", "shared-x"))
    assert ep.network == "acme/web"  # only acme's pattern matches


def test_an_explicit_binding_wins_and_declared_addresses_are_kept(policy) -> None:
    (ep,), _ = judge(policy, libvirt_port("vnet5", 8, "52:54:00:00:00:07", "web-1",
                                          **{contract.NETWORK: "acme/db",
                                             contract.IPS: "198.51.100.70"}))
    assert (ep.network, ep.ips) == ("acme/db", ("198.51.100.70",))
    (ep,), _ = judge(policy, libvirt_port("vnet6", 9, "52:54:00:00:00:08", "web-2",
                                          **{contract.IPS: "198.51.100.20"}))
    assert (ep.network, ep.ips) == ("acme/web", ("198.51.100.20",))


def test_a_mapped_port_still_needs_a_unicast_mac(policy) -> None:
    _, (refusal,) = judge(policy, libvirt_port("vnet7", 10, "01:00:5e:00:00:01", "web-3"))
    assert "not a unicast MAC" in refusal.reason


def test_mappings_are_part_of_what_a_policy_is(policy, tmp_path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(POLICY_TEXT.replace('"web-*"', '"www-*"'))
    other = load_policy([str(path)])
    assert other != policy and hash(other) != hash(policy)
    assert other.map_port("web-1", "") is None and other.map_port("www-1", "") is not None
