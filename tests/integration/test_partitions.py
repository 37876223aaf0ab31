"""Management partitions and controller restarts never cut tenant traffic (real OVS).

A 20 ms ping stream runs between a VM of the partitioned hypervisor and a VM of another
while the partitioned hypervisor's management link (or one of its channels) is cut; not one
packet may be lost, and no flow on either switch may be removed and re-added (a flow's age,
as OVS reports it, must span the whole test).
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dove_lab import controller_proc
from dove_lab.lab import Lab
from dove_lab.ovs_instance import OvsInstance
from dove_lab.probe import Fate
from dove_lab.topology import load_topology
from ovsdb_agent import contract
from ryu_dove.policy import load_policy
from tests.integration.conftest import EXAMPLE_POLICY, lab_name
from tests.integration.helpers import (
    PAIR,
    api_get,
    changed,
    fate,
    installed,
    wait_for,
    wait_in_sync,
)

INTERVAL_S = 0.02
NOTICED_S = 7.0  # "unreachable within ~5 s": 3 echo intervals of 1.5 s, plus a tick and the API


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab for the module: each test leaves it healed and in sync."""
    topology = tmp_path_factory.mktemp("partitions") / "pair.yaml"
    topology.write_text(PAIR)
    policy = load_policy([EXAMPLE_POLICY])
    built = Lab(lab_name())
    try:
        built.up(load_topology(str(topology), policy), [EXAMPLE_POLICY], policy,
                 controller=True)
        yield built
    finally:
        built.down()


@pytest.fixture
def healthy(lab: Lab) -> Lab:
    wait_in_sync(lab)
    wait_for(lambda: fate(lab, "a1", "a2", timeout=1) is Fate.REACHES, 10, "a1 to reach a2")
    return lab


@contextmanager
def ping_stream(lab: Lab, seconds: float) -> Iterator[dict[str, object]]:
    """A 20 ms ping stream a1 -> a2 for `seconds`; on exit, waits for its end and fills
    the dict with packets sent and received, and when each lost one was sent."""
    vms = lab.state().vms
    count = math.ceil(seconds / INTERVAL_S)
    # -w: wait for every reply until that deadline (with -W, the last one counts as lost
    # when it takes longer than twice the round trips seen so far)
    proc = subprocess.Popen(["ip", "netns", "exec", vms["a1"].netns, "ping", "-n", "-i",
                             str(INTERVAL_S), "-c", str(count), "-w", str(int(seconds) + 10),
                             vms["a2"].ip],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result: dict[str, object] = {}
    try:
        yield result
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert found, out[-2000:]
    sent, answered = int(found.group(1)), {int(n) for n in re.findall(r"icmp_seq=(\d+) ", out)}
    lost = sorted(set(range(1, sent + 1)) - answered)
    result.update(sent=sent, received=int(found.group(2)),
                  lost_at_s=[round((seq - 1) * INTERVAL_S, 2) for seq in lost[:20]])
    if lost:  # say where a packet may have gone, for whoever reads the failure
        result["ovs_drops"] = {hv.name: datapath_drops(lab.ovs(hv))
                               for hv in lab.state().hypervisors.values()}


def datapath_drops(ovs: OvsInstance) -> list[str]:
    """OVS's own drop counters that are not zero, and its datapath's lost upcalls."""
    lines = [line.strip() for line in ovs.appctl("coverage/show").splitlines()
             if "drop" in line and not line.rstrip().endswith("total: 0")]
    lines += [line.strip() for line in ovs.appctl("dpctl/show").splitlines()
              if "lookups" in line]
    return lines


def hypervisor(lab: Lab, name: str) -> dict[str, object]:
    try:
        return next((h for h in api_get(lab, "hypervisors") if h["name"] == name), {})
    except OSError:
        return {}


def controller_view(lab: Lab) -> dict[str, object]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{lab.status()['controller']['api']}/v1/controller",
                                timeout=5) as resp:
        view: dict[str, object] = json.load(resp)
    return view


def flows_now(lab: Lab) -> dict[str, dict[int, tuple[float, str]]]:
    return {hv: installed(lab, hv) for hv in ("hv1", "hv2")}


def assert_untouched(lab: Lab, before: dict[str, dict[int, tuple[float, str]]],
                     elapsed: float) -> None:
    """The same flows, none younger than the test: nothing removed and re-added."""
    for hv, flows in before.items():
        after = installed(lab, hv)
        assert after.keys() == flows.keys(), f"{hv}: flows changed\n{changed(flows, after)}"
        young = [line for cookie, (age, line) in after.items()
                 if age + 1.0 < flows[cookie][0] + elapsed]
        assert young == [], f"{hv}: flows re-installed: {young}"


def wait_unreachable(lab: Lab, name: str) -> float:
    """Seconds until the API shows the hypervisor unreachable and the fleet out of sync."""
    cut = time.monotonic()
    wait_for(lambda: hypervisor(lab, name).get("state") == "unreachable", NOTICED_S + 5,
             f"{name} shown unreachable")
    noticed = time.monotonic() - cut
    assert not controller_view(lab)["synchronised"]
    return noticed


def wait_healed(lab: Lab) -> None:
    wait_for(lambda: hypervisor(lab, "hv2").get("state") == "connected", 30,
             "hv2 connected again")
    wait_in_sync(lab, timeout=30)
    wait_for(lambda: controller_view(lab)["synchronised"], 10, "the controller synchronised")


@pytest.mark.parametrize("seconds", [25, 60])
def test_a_partition_loses_not_one_packet_and_touches_no_flow(healthy: Lab,
                                                              seconds: int) -> None:
    lab, before, started = healthy, flows_now(healthy), time.monotonic()
    with ping_stream(lab, seconds + 15) as stream:
        time.sleep(2)  # the stream runs before the cut
        lab.partition("hv2", "all")
        noticed = wait_unreachable(lab, "hv2")
        assert noticed <= NOTICED_S, f"unreachable only after {noticed:.1f} s"
        hv2 = hypervisor(lab, "hv2")
        assert hv2["tep_ip"] and not hv2["openflow"] and not hv2["ovsdb"]
        time.sleep(max(0.0, seconds - noticed))  # the rest of the partition
        lab.heal("hv2", "all")
        wait_healed(lab)
    assert_untouched(lab, before, time.monotonic() - started)
    assert stream["sent"] > 0 and stream["received"] == stream["sent"], stream


@pytest.mark.parametrize("first, second", [("ovsdb", "openflow"), ("openflow", "ovsdb")])
def test_a_heal_in_either_order_removes_and_re_adds_nothing(healthy: Lab, first: str,
                                                            second: str) -> None:
    lab, before, started = healthy, flows_now(healthy), time.monotonic()
    with ping_stream(lab, 40) as stream:
        lab.partition("hv2", "all")
        lab.partition("hv2", second)  # still cut when the link comes back
        wait_unreachable(lab, "hv2")
        lab.heal("hv2", "all")  # now only `first` can reconnect
        wait_for(lambda: hypervisor(lab, "hv2").get(first) is True, 30,
                 f"hv2's {first} connection back first")
        assert hypervisor(lab, "hv2")["state"] == "degraded"
        lab.heal("hv2", second)
        wait_healed(lab)
    assert_untouched(lab, before, time.monotonic() - started)
    assert stream["sent"] > 0 and stream["received"] == stream["sent"], stream


def test_stale_connections_reset_after_the_new_ones_change_nothing(healthy: Lab) -> None:
    """The hypervisor gives up its connections within a short cut and makes new ones while
    the controller still holds the old (reset only when its packets get through)."""
    lab = healthy
    ovs = lab.ovs(lab.state().hypervisors["hv2"])
    manager = ovs.vsctl("get-manager").split()[0]
    ovs.vsctl("set", "controller", "br-int", "inactivity_probe=1000", "--",
              "set", "manager", manager, "inactivity_probe=1000")
    try:
        wait_in_sync(lab)
        before, started = flows_now(lab), time.monotonic()
        with ping_stream(lab, 25) as stream:
            lab.partition("hv2", "all")
            time.sleep(3.5)  # hv2 drops its side after ~2 s; the controller waits 4.5 s
            lab.heal("hv2", "all")
            wait_healed(lab)
        assert_untouched(lab, before, time.monotonic() - started)
        assert stream["received"] == stream["sent"] > 0, stream
    finally:
        ovs.vsctl("clear", "controller", "br-int", "inactivity_probe", "--",
                  "clear", "manager", manager, "inactivity_probe")


def test_a_controller_killed_and_started_during_a_partition_keeps_everything(
        healthy: Lab) -> None:
    lab, before, started = healthy, flows_now(healthy), time.monotonic()
    with ping_stream(lab, 60) as stream:
        lab.partition("hv2", "all")
        lab.controller_stop(kill=True)
        controller_proc.start(lab.state())  # not Lab.controller_start: hv2 cannot come
        wait_for(lambda: hypervisor(lab, "hv1").get("in_sync") is True, 30,
                 "hv1 back in sync with the restarted controller")
        hv2 = hypervisor(lab, "hv2")
        assert hv2["state"] == "stale", hv2  # restored from disk, not heard since
        tunnels = {(t["hypervisor"], t["remote"]) for t in api_get(lab, "tunnels")}
        assert ("hv1", "hv2") in tunnels
        time.sleep(35)  # past the controller's longest startup grace (30 s)
        assert fate(lab, "a1", "a2", timeout=2) is Fate.REACHES
        lab.heal("hv2", "all")
        wait_healed(lab)
    assert_untouched(lab, before, time.monotonic() - started)
    assert stream["received"] == stream["sent"] > 0, stream


def test_a_hypervisor_deleted_and_added_again_comes_back_empty(make_lab, write_topology):
    lab = make_lab(write_topology(PAIR), controller=True)
    wait_in_sync(lab)
    lab.del_hypervisor("hv2")  # leaves (dove-join --leave): the controller forgets it
    assert not any(h["name"] == "hv2" for h in api_get(lab, "hypervisors"))
    lab.add_hypervisor("hv2")
    ovs = lab.ovs(lab.state().hypervisors["hv2"])
    ports = ovs.vsctl("list-ports", contract.INTEGRATION_BRIDGE).split()
    assert not any(p.startswith("vif") for p in ports), ports  # a fresh database
    wait_in_sync(lab)
    assert [e for e in api_get(lab, "endpoints") if e["hypervisor"] == "hv2"] == []
    assert api_get(lab, "refused") == []
    with open(lab.status()["controller"]["log"]) as f:
        log = f.read()
    assert "hypervisor hv2 removed (left" in log, log[-2000:]
    after_leaving = log.split("hypervisor hv2 removed (left")[-1]
    assert "on hv2 port" not in after_leaving, after_leaving  # no old VM bound again
