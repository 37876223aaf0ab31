"""dove-join against a real ovsdb-server and ovs-vswitchd: what it sets, and idempotence."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dove_lab.nodes import delete_netns, netns_add
from dove_lab.ovs_instance import OvsInstance


@pytest.fixture
def ovs(tmp_path: Path) -> Iterator[OvsInstance]:
    netns = f"dove-test{secrets.token_hex(3)}.hv"
    netns_add(netns)
    instance = OvsInstance(netns, tmp_path / "ovs")
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        delete_netns(netns)


def dove_join(ovs: OvsInstance, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ovsdb_agent.join", "--db", ovs.db, *args],
                          capture_output=True, text=True, timeout=60)


def get(ovs: OvsInstance, *args: str) -> str:
    return ovs.vsctl("--bare", "get", *args).strip()


JOIN = ("--controller", "203.0.113.1", "--tep-ip", "192.0.2.7", "--hypervisor", "hv7",
        "--datapath-type", "netdev")


def test_join_configures_the_integration_bridge(ovs):
    result = dove_join(ovs, *JOIN)
    assert result.returncode == 0, result.stderr
    assert get(ovs, "bridge", "br-int", "fail_mode") == "secure"
    assert get(ovs, "bridge", "br-int", "datapath_type") == "netdev"
    assert ovs.vsctl("get-controller", "br-int").split() == ["tcp:203.0.113.1:6653"]
    assert ovs.vsctl("get-manager").split() == ["tcp:203.0.113.1:6640"]
    ids = get(ovs, "open_vswitch", ".", "external_ids")
    for pair in ("dove-tep-ip=\"192.0.2.7\"", "dove-hypervisor=hv7",
                 "dove-datapath-type=netdev"):
        assert pair in ids


def test_join_is_idempotent_and_replaces_only_its_own_manager(ovs):
    assert dove_join(ovs, *JOIN).returncode == 0
    controller = get(ovs, "controller", "br-int", "_uuid")
    ovs.vsctl("add", "open_vswitch", ".", "manager_options", "@m", "--", "--id=@m", "create",
              "manager", "target=\"ptcp:6641:127.0.0.1\"")
    assert dove_join(ovs, *JOIN).returncode == 0
    assert get(ovs, "controller", "br-int", "_uuid") == controller  # no reconnect
    moved = dove_join(ovs, "--controller", "203.0.113.2", "--tep-ip", "192.0.2.7",
                      "--hypervisor", "hv7", "--datapath-type", "netdev")
    assert moved.returncode == 0, moved.stderr
    assert sorted(ovs.vsctl("get-manager").split()) == ["ptcp:6641:127.0.0.1",
                                                        "tcp:203.0.113.2:6640"]
    assert ovs.vsctl("get-controller", "br-int").split() == ["tcp:203.0.113.2:6653"]


def test_join_rejects_bad_arguments_and_unreachable_db(ovs, tmp_path):
    bad = dove_join(ovs, "--controller", "not-an-ip", "--tep-ip", "192.0.2.7")
    assert bad.returncode == 2 and "not an IP address: 'not-an-ip'" in bad.stderr
    gone = subprocess.run([sys.executable, "-m", "ovsdb_agent.join", "--db",
                           f"unix:{tmp_path}/nothing.sock", *JOIN],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and "cannot reach OVSDB" in gone.stderr
    assert "Traceback" not in gone.stderr


def ports(ovs: OvsInstance) -> list[str]:
    return sorted(ovs.vsctl("list-ports", "br-int").split())


def test_leave_removes_what_join_set_and_nothing_else(ovs):
    assert dove_join(ovs, *JOIN).returncode == 0
    ovs.vsctl("set", "open_vswitch", ".", "external_ids:system-id=hv7-id", "--",
              "add", "open_vswitch", ".", "manager_options", "@m", "--", "--id=@m", "create",
              "manager", "target=\"ptcp:6641:127.0.0.1\"")
    owned = ("external_ids:dove-owner=ryu_dove", "external_ids:dove-remote=hv8")
    ovs.vsctl("add-port", "br-int", "dv-hv8", "--", "set", "interface", "dv-hv8", "type=vxlan",
              "options:remote_ip=192.0.2.8", "options:key=flow", *owned,
              "--", "set", "port", "dv-hv8", *owned)
    ovs.vsctl("add-port", "br-int", "op-tun", "--", "set", "interface", "op-tun", "type=vxlan",
              "options:remote_ip=192.0.2.9")  # an operator's tunnel: not ours to remove
    ovs.vsctl("add-port", "br-int", "vif-vm1", "--", "set", "interface", "vif-vm1",
              "type=internal", "external_ids:iface-id=vm1", "external_ids:dove-network=acme/web",
              "external_ids:attached-mac=\"02:00:00:00:00:01\"")
    for _ in range(2):  # leaving twice changes nothing the second time
        result = dove_join(ovs, "--leave")
        assert result.returncode == 0, result.stderr
        assert "left the controller" in result.stdout
        ids = get(ovs, "open_vswitch", ".", "external_ids")
        assert "dove-" not in ids and "system-id=hv7-id" in ids
        assert ports(ovs) == ["op-tun", "vif-vm1"]
        assert ovs.vsctl("get-controller", "br-int").split() == []
        assert ovs.vsctl("get-manager").split() == ["ptcp:6641:127.0.0.1"]
        assert get(ovs, "bridge", "br-int", "fail_mode") == "secure"  # br-int stays as it was


def test_leave_takes_no_join_options_and_join_needs_them(ovs):
    leave = dove_join(ovs, "--leave", "--controller", "203.0.113.1")
    assert leave.returncode == 2 and "--leave takes only --db and --bridge" in leave.stderr
    join = dove_join(ovs, "--hypervisor", "hv7")
    assert join.returncode == 2
    assert "joining needs --controller and --tep-ip (or --leave" in join.stderr
    assert ovs.vsctl("get-manager").split() == []  # neither touched the database
