"""VM ports plugged exactly as libvirt plugs them (iface-id, attached-mac, iface-status,
vm-id; nothing of ryu_dove's) land in their network by the policy's port mappings, on real
OVS (issue 13, "Hosts plugged by libvirt or os-vif as they are")."""

from __future__ import annotations

import re
from pathlib import Path

from dove_lab.probe import ping
from ovsdb_agent import contract
from tests.integration.conftest import EXAMPLE_POLICY
from tests.integration.helpers import PAIR, api_get, wait_for, wait_in_sync

MAPPING = """    ports:
      - {iface-id: "lv-*", network: web}
"""


def mapped_policy(tmp_path: Path) -> Path:
    """The example policy with acme mapping every iface-id lv-* to acme/web."""
    text = Path(EXAMPLE_POLICY).read_text()
    anchor = "  globex:\n"
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(anchor, MAPPING + anchor, 1))
    return path


def test_a_port_plugged_as_libvirt_does_lands_in_its_mapped_network(
        make_lab, write_topology, tmp_path):
    lab = make_lab(write_topology(PAIR), controller=True,
                   policy_paths=[str(mapped_policy(tmp_path))])
    wait_in_sync(lab)
    lv = lab.add_vm("lv1", "hv2", "acme/web", "198.51.100.20", libvirt=True,
                    iface_id="lv-web-1")
    stray = lab.add_vm("lv2", "hv2", "acme/web", "198.51.100.21", libvirt=True,
                       iface_id="other-1")
    ovs = lab.ovs(lab.state().hypervisors["hv2"])
    text = ovs.vsctl("get", "Interface", lv.port, "external_ids")  # {key=value, ...}
    assert set(re.findall(r"([a-z-]+)=", text)) == {  # what libvirt writes, nothing more
        contract.IFACE_ID, contract.ATTACHED_MAC, contract.IFACE_STATUS, contract.VM_ID}

    def bound() -> list[dict[str, object]]:
        return [e for e in api_get(lab, "endpoints") if e.get("iface_id") == "lv-web-1"]

    wait_for(lambda: bool(bound()), 10, "lv1 bound by the port mapping")
    (ep,) = bound()
    assert (ep["network"], ep["mac"], ep["hypervisor"], ep["addresses"]) == (
        "acme/web", lv.mac, "hv2", "learning")
    vms = lab.state().vms
    wait_for(lambda: ping(vms["a1"], lv.ip, timeout=1.0), 10, "a1 -> lv1 across hypervisors")
    assert ping(lv, vms["a1"].ip, timeout=2.0)
    wait_for(lambda: bound()[0]["ips"] == [lv.ip], 5, "lv1's address learned")
    # A libvirt port no mapping names is not ryu_dove's: not bound, not refused, cut off.
    assert not [e for e in api_get(lab, "endpoints") if e.get("iface_id") == "other-1"]
    assert not [r for r in api_get(lab, "refused") if r.get("iface_id") == "other-1"]
    assert not ping(stray, vms["a1"].ip, timeout=1.0)
