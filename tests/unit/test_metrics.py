"""/metrics: every declared metric is exposed, in Prometheus's text format, with values that
are the engine's (fake switches; policies/example.yaml)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ryu_dove.events import PolicyRefused
from ryu_dove.northbound import metrics, views
from ryu_dove.northbound.api import ApiServer
from tests.unit.test_engine import converged


def scrape_text(engine) -> str:
    return metrics.render(views.build(engine, "metrics")["metrics"]).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_declared_metric_is_exposed_once() -> None:
    h = converged()
    names = [f.name for f in text_string_to_metric_families(scrape_text(h.engine))]
    assert names == [metrics.PREFIX + m.name for m in metrics.METRICS]


def test_the_values_are_the_engines() -> None:
    h = converged()
    h.run(PolicyRefused())
    got = samples(scrape_text(h.engine))
    assert got[("dove_hypervisors", (("state", "connected"),))] == 2
    assert got[("dove_endpoints", (("network", "web"), ("tenant", "acme")))] == 2
    assert got[("dove_openflow_connections", ())] == 2
    for hv in ("hv1", "hv2"):
        rec = h.engine.switch_of(hv)
        assert rec is not None and rec.in_sync
        label = (("hypervisor", hv),)
        assert got[("dove_switch_flows_desired", label)] == len(rec.desired)
        assert got[("dove_switch_flows_installed", label)] == len(rec.installed)
        assert got[("dove_switch_flow_drift", label)] == 0
        assert got[("dove_switch_flow_mods_total", label)] == rec.stats.flow_mods > 0
    updates = sum(r.stats.bundles + r.stats.plain_updates for r in h.engine.reconcilers.values())
    assert got[("dove_switch_update_seconds_count", ())] == updates
    assert got[("dove_switch_update_seconds_bucket", (("le", "+Inf"),))] == updates
    assert got[("dove_policy_reloads_total", (("result", "refused"),))] == 1
    assert got[("dove_policy_reloads_total", (("result", "applied"),))] == 0


def test_the_api_serves_it_as_prometheus_text() -> None:
    h = converged()
    server = ApiServer("127.0.0.1", 0, lambda section: views.build(h.engine, section))
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = resp.read().decode()
    finally:
        server.stop()
    assert "# TYPE dove_switch_update_seconds histogram" in body
    assert samples(body)[("dove_hypervisors", (("state", "connected"),))] == 2


def test_the_grafana_dashboard_asks_only_for_declared_metrics() -> None:
    import json
    import re
    from pathlib import Path
    dash = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                       "grafana-dashboard.json").read_text())
    exposed = set()
    for m in metrics.METRICS:
        base = metrics.PREFIX + m.name
        exposed |= {base + "_total"} if m.kind == "counter" else (
            {base + "_bucket", base + "_sum", base + "_count"} if m.kind == "histogram"
            else {base})
    asked = {name for panel in dash["panels"] for target in panel["targets"]
             for name in re.findall(r"\bdove_[a-z_]+", target["expr"])}
    assert asked and asked <= exposed, asked - exposed


def test_each_rule_counts_the_packets_of_its_flows_on_every_switch() -> None:
    from ryu_dove.pipeline.flows import Ct
    from ryu_dove.pipeline.stages import Stage
    from tests.unit.test_engine import A1, report, tunnel_port, vm_port
    h = converged()
    db = vm_port("d1", 2, "02:00:00:00:00:0d", "198.51.100.70", net="acme/db")
    h.run(report("hv1", A1, db, tunnel_port("hv2", 9)))
    h.later(h.engine.timing.counters_s)  # the engine asks every switch for its counts
    asked = [x for sw in h.switches.values() for kind, x in sw.sent if kind == "dump"]
    assert len(asked) >= 4  # the two first reads, then a counter read each
    rec = h.engine.switch_of("hv1")
    assert rec is not None
    flows = [f for f in rec.desired.values() if f.stage is Stage.IN_ACL_STATE and f.priority]
    rec.counters = {f.cookie: 3 for f in flows}  # as if the switch answered so
    # Only the flows that carry a rule's mark count for it: not the stateless checks of the
    # end that does not track, nor the later fragments' pass.
    acl = [f for f in flows if "ct_mark" in f.match_dict
           or any(isinstance(a, Ct) and a.mark is not None for a in f.actions)]
    assert len(acl) < len(flows)
    got = samples(scrape_text(h.engine))
    tcp = got[("dove_rule_packets_total", (("rule", "web->db tcp 5432"), ("tenant", "acme")))]
    icmp = got[("dove_rule_packets_total", (("rule", "web->db icmp"), ("tenant", "acme")))]
    assert tcp > 0 and icmp > 0 and tcp + icmp == 3 * len(acl)
