"""Controller restarts, policy reloads and bad bindings: nothing that runs is disturbed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from dove_lab.lab import Lab
from dove_lab.probe import Fate, ping
from ovsdb_agent import contract
from tests.integration.conftest import EXAMPLE_POLICY
from tests.integration.helpers import (
    PAIR,
    api_get,
    changed,
    fate,
    installed,
    wait_for,
    wait_in_sync,
)

TWO_TENANTS = PAIR + """\
  - {name: g1, hypervisor: hv1, network: globex/web, ip: 198.51.100.20}
  - {name: g2, hypervisor: hv2, network: globex/web, ip: 198.51.100.21}
"""


def settled_flows(lab: Lab, hv: str, timeout: float = 10.0) -> dict[int, tuple[float, str]]:
    """The flow table once two dumps half a second apart hold the same flows."""
    last = installed(lab, hv)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = installed(lab, hv)
        if now.keys() == last.keys():
            return now
        last = now
    raise AssertionError(f"{hv}: flows still changing after {timeout} s")


def test_killed_controller_keeps_traffic_and_restart_changes_no_flow(make_lab, write_topology):
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    wait_for(lambda: fate(lab, "a1", "a2", timeout=1) is Fate.REACHES, 10, "a1 to reach a2")
    before = {hv: settled_flows(lab, hv) for hv in ("hv1", "hv2")}
    assert all(before.values())
    lab.controller_stop(kill=True)
    assert fate(lab, "a1", "a2") is Fate.REACHES  # fail-mode secure: flows keep working
    assert fate(lab, "g1", "a2") is not Fate.REACHES  # and keep isolating
    restarted = time.monotonic()
    lab.controller_start()
    wait_in_sync(lab)
    settled = time.monotonic() - restarted
    for hv in ("hv1", "hv2"):
        after = installed(lab, hv)
        log = Path(lab.status()["controller"]["log"]).read_text()
        assert after.keys() == before[hv].keys(), (
            f"{hv}: flows changed across the restart\n{changed(before[hv], after)}\n{log}")
        young = [line for age, line in after.values() if age < settled]
        assert young == [], f"{hv}: flows re-installed after the restart: {young}"
    assert fate(lab, "a1", "a2") is Fate.REACHES


def test_policy_reload_applies_good_changes_and_refuses_bad_ones(make_lab, write_topology,
                                                                 tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    shutil.copy(EXAMPLE_POLICY, policy)
    lab = make_lab(write_topology(TWO_TENANTS), controller=True, policy_paths=[str(policy)])
    wait_in_sync(lab)
    wait_for(lambda: fate(lab, "g1", "g2", timeout=1) is Fate.REACHES, 10, "g1 to reach g2")
    policy.write_text(policy.read_text() + "\n  broken: [\n")  # a syntax error
    lab.controller_reload()
    log = Path(lab.status()["controller"]["log"])
    wait_for(lambda: "policy reload refused" in log.read_text(), 10, "the refusal in the log")
    assert f"{policy}:" in log.read_text()  # the problem is given with its position
    assert fate(lab, "g1", "g2") is Fate.REACHES  # the running policy is kept
    policy.write_text("tenants:\n  a:\n? b: {c: 1}\n")  # crashed the YAML parser itself
    lab.controller_reload()
    wait_for(lambda: f"{policy}:3:3: a key must be a plain value" in log.read_text(), 10,
             "the parser's failure as a positioned refusal")
    policy.unlink()
    os.mkfifo(policy)  # used to block the reload forever
    lab.controller_reload()
    wait_for(lambda: "not a regular file" in log.read_text(), 10, "the FIFO refused")
    policy.unlink()
    assert lab.status()["controller"]["running"]
    assert fate(lab, "g1", "g2") is Fate.REACHES  # still the running policy
    text = Path(EXAMPLE_POLICY).read_text()
    policy.write_text(text[:text.index("  globex:")])  # globex is gone from the policy
    lab.controller_reload()
    wait_for(lambda: {r["iface_id"] for r in api_get(lab, "refused")} == {"g1", "g2"}, 10,
             "globex's bindings to be refused")
    wait_in_sync(lab)
    vms = lab.state().vms
    assert not ping(vms["g1"], vms["g2"].ip, timeout=1)
    assert fate(lab, "a1", "a2") is Fate.REACHES


def test_bad_binding_is_refused_with_its_reason_and_disturbs_nothing(make_lab, write_topology):
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    hv = lab.state().hypervisors["hv1"]
    subprocess.run(["ip", "-n", hv.netns, "link", "add", "bad0", "type", "veth", "peer", "name",
                    "bad0p"], check=True)
    subprocess.run(["ip", "-n", hv.netns, "link", "set", "bad0", "up"], check=True)
    lab.vswitch(hv).plug_vif(contract.INTEGRATION_BRIDGE, "bad0", {
        contract.IFACE_ID: "bad", contract.ATTACHED_MAC: "02:00:00:00:0b:ad",
        contract.NETWORK: "acme/nope", contract.IPS: "198.51.100.30"})
    wait_for(lambda: any(r["iface_id"] == "bad" for r in api_get(lab, "refused")), 10,
             "the binding to be refused")
    (refusal,) = [r for r in api_get(lab, "refused") if r["iface_id"] == "bad"]
    assert refusal["reason"] == "unknown network 'acme/nope' (not in the policy)"
    wait_in_sync(lab)
    assert fate(lab, "a1", "a2") is Fate.REACHES
    assert fate(lab, "g1", "g2") is Fate.REACHES
