"""/metrics scraped in a real lab: the values are the lab's (issue 14, Prometheus metrics)."""

from __future__ import annotations

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from dove_lab.lab import Lab
from dove_lab.probe import ping
from tests.integration.helpers import PAIR, wait_for, wait_in_sync


def scrape(lab: Lab) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{lab.status()['controller']['api']}/metrics",
                                timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def ovs_flow_count(lab: Lab, hv: str) -> int:
    out = lab.ovs(lab.state().hypervisors[hv]).ofctl("dump-aggregate", "br-int")
    return int(re.search(r"flow_count=(\d+)", out)[1])  # type: ignore[index]


def test_metrics_say_what_the_lab_has(make_lab, write_topology):
    lab = make_lab(write_topology(PAIR), controller=True,
                   controller_args=["--counters-interval", "0.5"])
    wait_in_sync(lab)
    learner = lab.add_vm("l1", "hv2", "acme/db", "198.51.100.80", learn=True)
    ping(learner, lab.state().vms["a1"].ip, timeout=1.0)  # speaks: its address is learned
    wait_for(lambda: scrape(lab).get(
        ("dove_learned_addresses", (("network", "db"), ("tenant", "acme")))) == 1, 5,
        "the learned address counted")
    wait_in_sync(lab)
    got = scrape(lab)
    assert got[("dove_hypervisors", (("state", "connected"),))] == 2
    assert got[("dove_openflow_connections", ())] == 2
    assert got[("dove_ovsdb_connections", ())] == 2
    assert got[("dove_endpoints", (("network", "web"), ("tenant", "acme")))] == 2
    assert got[("dove_endpoints", (("network", "db"), ("tenant", "acme")))] == 1
    assert got[("dove_learning_claims_total", (("result", "learned"),))] == 1
    assert got[("dove_packet_ins_total", (("reason", "learn"),))] >= 1
    for hv in ("hv1", "hv2"):
        label = (("hypervisor", hv),)
        assert got[("dove_switch_flow_drift", label)] == 0
        assert got[("dove_switch_flows_installed", label)] == ovs_flow_count(lab, hv)
    assert got[("dove_switch_update_seconds_count", ())] > 0
    # a1 (web) pings l1 (db): the example's icmp rule counts its packets.
    assert ping(lab.state().vms["a1"], learner.ip, count=3, timeout=3.0)
    icmp = ("dove_rule_packets_total", (("rule", "web->db icmp"), ("tenant", "acme")))
    wait_for(lambda: scrape(lab).get(icmp, 0) >= 6, 5, "the icmp rule's packets counted")
    assert scrape(lab)[("dove_rule_packets_total", (("rule", "web->db tcp 5432"),
                                                    ("tenant", "acme")))] == 0
    lab.controller_reload()
    wait_for(lambda: scrape(lab).get(("dove_policy_reloads_total",
                                      (("result", "unchanged"),))) == 1, 5, "a reload counted")
