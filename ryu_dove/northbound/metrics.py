"""Prometheus metrics at /metrics on the API port (docs/metrics.md).

Every metric is declared once, in METRICS. Its values come from one snapshot of the engine's
state, built on the engine's thread (`snapshot`, asked like any view), so they are
consistent with each other and need no locks. The API's thread then renders the snapshot in
Prometheus's text format with prometheus_client's metric families (`render`).

Counters are the engine's own running totals: they restart from 0 with the controller, as
Prometheus expects of a counter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ryu_dove.pipeline.flows import Ct, Flow
from ryu_dove.pipeline.parts.matches import rule_mark
from ryu_dove.policy.model import Rule

if TYPE_CHECKING:
    from ryu_dove.engine.loop import Engine

# The classic text format generate_latest writes, which every Prometheus reads (newer
# prometheus_client releases call it "1.0.0", which Prometheus 2 does not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Samples = list[tuple[tuple[str, ...], float]]  # (label values, value)


@dataclass(frozen=True)
class Declared:
    name: str  # without the dove_ prefix; counters without _total (the library adds it)
    kind: str  # "gauge", "counter" or "histogram"
    doc: str
    labels: tuple[str, ...] = ()


METRICS: tuple[Declared, ...] = (
    Declared("hypervisors", "gauge", "Hypervisors by state (connected, degraded, "
             "unreachable, stale)", ("state",)),
    Declared("endpoints", "gauge", "Active endpoints per network", ("tenant", "network")),
    Declared("endpoints_standby", "gauge", "Live migrations' standby ports per network",
             ("tenant", "network")),
    Declared("learned_addresses", "gauge", "Addresses learned from the data plane, per network",
             ("tenant", "network")),
    Declared("refused_bindings", "gauge", "VM port bindings and hypervisor reports refused"),
    Declared("switch_flows_desired", "gauge", "Flows the controller wants on a switch",
             ("hypervisor",)),
    Declared("switch_flows_installed", "gauge", "Flows the controller knows a switch holds",
             ("hypervisor",)),
    Declared("switch_flow_drift", "gauge", "Flows that differ between desired and installed "
             "(0 when in sync)", ("hypervisor",)),
    Declared("switch_flow_mods", "counter", "Flow-mods sent to a switch", ("hypervisor",)),
    Declared("switch_bundles", "counter", "Atomic bundles committed on a switch",
             ("hypervisor",)),
    Declared("switch_update_seconds", "histogram", "Time from sending a switch update "
             "(bundle or flow-mods) to its commit being confirmed"),
    Declared("rule_packets", "counter", "Packets through each allow rule's flows (new "
             "connections it opened and their traffic), summed over the switches; read "
             "from OVS every 15 s (a switch's counts restart when its flows are re-added)",
             ("tenant", "rule")),
    Declared("packet_ins", "counter", "Packets the switches copied to the controller, by "
             "reason (learn, activate, rate_limited, other)", ("reason",)),
    Declared("learning_claims", "counter", "Address claims from the data plane, by result "
             "(learned, refused, expired)", ("result",)),
    Declared("learning_ports_muted", "counter", "Times a port was muted for refused claims"),
    Declared("migrations", "counter", "Live migrations that took effect"),
    Declared("migrations_held", "counter", "Moves refused because the VM was flapping"),
    Declared("policy_reloads", "counter", "Policy reloads (SIGHUP) by result (applied, "
             "unchanged, refused)", ("result",)),
    Declared("ovsdb_connections", "gauge", "Hypervisors' OVSDB connections reporting"),
    Declared("openflow_connections", "gauge", "Switches connected over OpenFlow"),
    Declared("engine_queue_depth", "gauge", "Events waiting for the engine's thread"),
    Declared("engine_batches", "counter", "Batches of events the engine applied"),
    Declared("engine_busy_seconds", "counter", "Time the engine spent applying batches"),
    Declared("engine_longest_batch_seconds", "gauge", "The longest batch so far"),
)
BY_NAME = {m.name: m for m in METRICS}
PREFIX = "dove_"


@dataclass(frozen=True)
class Buckets:
    """A histogram's cumulative counts at each upper bound, and its sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative
    total: float


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every metric's samples, built on the engine's thread."""
    from ryu_dove.northbound.views import state_of  # views imports this module
    out: dict[str, Any] = {m.name: [] for m in METRICS}
    states = Counter(state_of(engine, hv.name) for hv in engine.directory.hypervisors())
    out["hypervisors"] = [((s,), float(n)) for s, n in sorted(states.items())]
    _endpoint_samples(engine, out)
    out["refused_bindings"] = [((), float(len(engine.fleet.claims.refusals()) + sum(
        len(r) for r in engine.endpoints.refused.values())))]
    _switch_samples(engine, out)
    out["rule_packets"] = _rule_samples(engine)
    learn = engine.learner.stats
    punts = {**engine.punts, "rate_limited": learn.rate_limited}
    out["packet_ins"] = [((k,), float(v)) for k, v in sorted(punts.items())]
    out["learning_claims"] = [(("learned",), float(learn.learned)),
                              (("refused",), float(learn.refused)),
                              (("expired",), float(learn.expired))]
    out["learning_ports_muted"] = [((), float(learn.muted))]
    out["migrations"] = [((), float(engine.moves.moves))]
    out["migrations_held"] = [((), float(engine.moves.held))]
    out["policy_reloads"] = [((k,), float(v)) for k, v in sorted(engine.reloads.items())]
    out["ovsdb_connections"] = [((), float(sum(
        1 for name in engine.fleet.reports if engine.fleet.ovsdb_connected(name))))]
    out["openflow_connections"] = [((), float(len(engine.reconcilers)))]
    stats = engine.stats
    out["engine_queue_depth"] = [((), float(engine.queued()))]
    out["engine_batches"] = [((), float(stats.batches))]
    out["engine_busy_seconds"] = [((), stats.busy_s)]
    out["engine_longest_batch_seconds"] = [((), stats.longest_s)]
    return out


def _endpoint_samples(engine: Engine, out: dict[str, Any]) -> None:
    active: Counter[str] = Counter()
    standby: Counter[str] = Counter()
    learned: Counter[str] = Counter()
    for e in engine.directory.endpoints():
        (standby if e.standby else active)[e.network] += 1
        if e.learning and not e.standby:
            learned[e.network] += len(e.ips)
    for name, counts in (("endpoints", active), ("endpoints_standby", standby),
                         ("learned_addresses", learned)):
        out[name] = [(tuple(net.split("/", 1)), float(n)) for net, n in sorted(counts.items())]


def _switch_samples(engine: Engine, out: dict[str, Any]) -> None:
    bounds: tuple[float, ...] = ()
    counts: list[int] = []
    total = 0.0
    for rec in sorted(engine.reconcilers.values(), key=lambda r: r.name):
        desired = rec.desired.keys() if rec.desired is not None else set()
        label = (rec.name,)
        out["switch_flows_desired"].append((label, float(len(desired))))
        out["switch_flows_installed"].append((label, float(len(rec.installed))))
        out["switch_flow_drift"].append((label, float(len(desired ^ rec.installed))))
        out["switch_flow_mods"].append((label, float(rec.stats.flow_mods)))
        out["switch_bundles"].append((label, float(rec.stats.bundles)))
        latency = rec.stats.latency
        bounds = latency.bounds
        counts = [a + b for a, b in zip(counts, latency.counts, strict=True)] if counts \
            else list(latency.counts)
        total += latency.total
    out["switch_update_seconds"] = Buckets(bounds, tuple(counts), total) if bounds else None


def _rule_samples(engine: Engine) -> Samples:
    """Each rule's packets: of the switches' flows that carry its mark (the commits of the
    connections it opens, and their established and related packets)."""
    labels = {rule_mark(r): (r.tenant, _rule_label(r)) for t in engine.policy.tenants.values()
              for r in t.rules}
    totals = dict.fromkeys(labels.values(), 0)
    for rec in engine.reconcilers.values():
        desired = rec.desired or {}
        for cookie, packets in rec.counters.items():
            flow = desired.get(cookie)
            mark = _mark_of(flow) if flow is not None else None
            label = labels.get(mark) if mark is not None else None
            if label is not None:
                totals[label] += packets
    return [(label, float(n)) for label, n in sorted(totals.items())]


def _mark_of(flow: Flow) -> int | None:
    mark = flow.match_dict.get("ct_mark")
    if isinstance(mark, int):
        return mark
    return next((a.mark for a in flow.actions if isinstance(a, Ct) and a.mark is not None),
                None)


def _rule_label(rule: Rule) -> str:
    """As the policy says it: "web->db tcp 5432" (a range "8000-8080", no port: any)."""
    return f"{rule.src}->{rule.dst} {rule.proto} {rule.port_text}".rstrip()


def families(samples: Mapping[str, Any]) -> Iterator[Metric]:
    """The snapshot as prometheus_client metric families, in declaration order."""
    for m in METRICS:
        name, value = PREFIX + m.name, samples.get(m.name)
        if m.kind == "histogram":
            yield _histogram(name, m.doc, value)
            continue
        family: GaugeMetricFamily | CounterMetricFamily = (
            GaugeMetricFamily(name, m.doc, labels=m.labels) if m.kind == "gauge"
            else CounterMetricFamily(name, m.doc, labels=m.labels))
        for labels, number in value or ():
            family.add_metric(list(labels), number)
        yield family


def _histogram(name: str, doc: str, value: Buckets | None) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    if value is None:
        return family
    cumulative, running = [], 0
    for bound, count in zip(value.bounds, value.counts, strict=False):
        running += count
        cumulative.append((_bound(bound), float(running)))
    running += sum(value.counts[len(value.bounds):])
    cumulative.append(("+Inf", float(running)))
    family.add_metric([], cumulative, value.total)
    return family


def _bound(value: float) -> str:
    return repr(float(value))


class _Snapshot:
    """A collector that yields one snapshot's families (prometheus_client's interface)."""

    def __init__(self, samples: Mapping[str, Any]) -> None:
        self._samples = samples

    def collect(self) -> Iterable[Metric]:
        return families(self._samples)


def render(samples: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(samples))
    return generate_latest(registry)
