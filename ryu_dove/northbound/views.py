"""What the controller knows, as plain JSON-able data for the API and dovectl show.

Built on the engine thread (the owner of the state), on request only.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovsdb_agent import contract
from ovsdb_agent.peerlog import printable
from ryu_dove.directory import Endpoint
from ryu_dove.northbound import metrics
from ryu_dove.northbound.resources import item

if TYPE_CHECKING:
    from ryu_dove.engine.loop import Engine

STARTED = time.time()
VERSION = importlib.metadata.version("ryu_dove")


def build(engine: Engine, section: str | None = None) -> dict[str, Any]:
    """{section: data} for one section, or for all of them (section None)."""
    if section is not None and section not in SECTIONS:
        raise KeyError(f"no view section {section!r}")
    names = SECTIONS if section is None else (section,)
    return {name: SECTIONS[name](engine) for name in names}


def _endpoints(engine: Engine) -> list[dict[str, Any]]:
    limit = engine.learner.settings.limit
    return [_endpoint(e, limit) for e in engine.directory.endpoints()]


def _refused(engine: Engine) -> list[dict[str, Any]]:
    """Hypervisors' reports refused whole (port and iface_id empty), then port bindings."""
    whole = [item("refused", r.name, "", "", f"OVSDB connection {printable(r.conn)}: {r.reason}")
             for r in engine.fleet.claims.refusals()]
    return whole + [item("refused", r.hypervisor, printable(r.port), printable(r.iface_id),
                         r.reason)
                    for refusals in engine.endpoints.refused.values() for r in refusals]


def _hypervisors(engine: Engine) -> list[dict[str, Any]]:
    return [_hypervisor(engine, hv.name) for hv in engine.directory.hypervisors()]


def _controller(engine: Engine) -> dict[str, Any]:
    stats = engine.stats
    states = [state_of(engine, hv.name) for hv in engine.directory.hypervisors()]
    return {
        "version": VERSION,
        "policy_sources": list(engine.policy.sources),
        "uptime_s": round(time.time() - STARTED, 1),
        "synchronised": engine.released and _every_switch_in_sync(engine),
        "started": engine.released,
        "hypervisors": {state: states.count(state) for state in sorted(set(states))},
        "packet_ins": engine.packet_ins,
        "switches": len(engine.reconcilers),
        "engine": {"batches": stats.batches, "events": stats.events,
                   "busy_s": round(stats.busy_s, 3),
                   "longest_batch_ms": round(1000 * stats.longest_s, 1),
                   "queued": engine.queued(), "heap_frozen": engine.gc.frozen,
                   "heap_sweeps": engine.gc.sweeps},
    }


def _endpoint(e: Endpoint, limit: int) -> dict[str, Any]:
    return item("endpoints", e.network, e.mac, list(e.ips), e.hypervisor, e.port, e.ofport,
                e.iface_id, _addressing(e, limit), [_utc(t) for t in e.learned_at], e.standby)


def _addressing(e: Endpoint, limit: int) -> str:
    """declared (dove-ips), learning (from what the VM sends), full (at the limit of
    learned addresses) or muted (refused claims: not learning for a while)."""
    if not e.learning:
        return "declared"
    if e.punt:
        return "learning"
    return "full" if len(e.ips) >= limit else "muted"


def _utc(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _every_switch_in_sync(engine: Engine) -> bool:
    """Every known switch connected and holding its desired flows."""
    for hv in engine.directory.hypervisors():
        rec = engine.switch_of(hv.name)
        if hv.dpid is not None and not (rec is not None and rec.in_sync):
            return False
    return True


def state_of(engine: Engine, name: str) -> str:
    """connected (OVSDB and OpenFlow), degraded (one of them), unreachable (neither), or
    stale (restored from disk after a restart and not heard since)."""
    ups = engine.fleet.ovsdb_connected(name) + (engine.switch_of(name) is not None)
    if not ups and name in engine.fleet.stale:
        return "stale"
    return ("unreachable", "degraded", "connected")[ups]


def _last_heard(engine: Engine, name: str) -> str | None:
    """When the hypervisor was last heard (now while connected), UTC, to the second."""
    heard = engine.wall() if engine.connected(name) else engine.fleet.heard.get(name)
    if heard is None:
        return None
    return _utc(heard)


def _hypervisor(engine: Engine, name: str) -> dict[str, Any]:
    hv = engine.directory.hypervisor(name)
    assert hv is not None
    rec = engine.switch_of(name)
    return item("hypervisors", hv.name, state_of(engine, name), hv.tep_ip,
                f"{hv.dpid:016x}" if hv.dpid is not None else None,
                engine.fleet.ovsdb_connected(name), rec is not None, _last_heard(engine, name),
                len(rec.desired) if rec and rec.desired is not None else None,
                len(rec.installed) if rec else None, bool(rec and rec.in_sync),
                rec.foreign if rec else None, len(rec.rejected) if rec else None)


def _tunnels(engine: Engine) -> list[dict[str, Any]]:
    out = []
    remotes = {hv.name: hv.tep_ip for hv in engine.directory.hypervisors()}
    for name, report in sorted(engine.fleet.reports.items()):
        for p in report.ports:
            ids = p.ids()
            if not contract.is_owned_tunnel(ids):
                continue
            remote = ids[contract.REMOTE]
            remote_ip = dict(p.options).get("remote_ip", remotes.get(remote))
            out.append(item("tunnels", name, remote, remote_ip, p.name, p.ofport))
    return out


SECTIONS: dict[str, Callable[[Engine], Any]] = {
    "metrics": metrics.snapshot,
    "endpoints": _endpoints,
    "refused": _refused,
    "hypervisors": _hypervisors,
    "tunnels": _tunnels,
    "controller": _controller,
}
