"""What the controller knows, as plain JSON-able data for the API and dovectl show.

Built on the engine thread (the owner of the state), on request only.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import TYPE_CHECKING, Any

from ovsdb_agent import contract

if TYPE_CHECKING:
    from ryu_dove.engine import Engine

STARTED = time.time()
VERSION = importlib.metadata.version("ryu_dove")


def build(engine: Engine) -> dict[str, Any]:
    return {
        "endpoints": [_endpoint(e) for e in engine.directory.endpoints()],
        "refused": [{"hypervisor": r.hypervisor, "port": r.port, "iface_id": r.iface_id,
                     "reason": r.reason}
                    for refusals in engine.refused.values() for r in refusals],
        "hypervisors": [_hypervisor(engine, hv.name) for hv in engine.directory.hypervisors()],
        "tunnels": _tunnels(engine),
        "controller": {
            "version": VERSION,
            "policy_sources": list(engine.policy.sources),
            "uptime_s": round(time.time() - STARTED, 1),
            "synchronised": engine.released,
            "packet_ins": engine.packet_ins,
            "switches": len(engine.switches),
        },
    }


def _endpoint(e: Any) -> dict[str, Any]:
    return {"network": e.network, "mac": e.mac, "ips": list(e.ips), "hypervisor": e.hypervisor,
            "port": e.port, "ofport": e.ofport, "iface_id": e.iface_id}


def _hypervisor(engine: Engine, name: str) -> dict[str, Any]:
    hv = engine.directory.hypervisor(name)
    assert hv is not None
    rec = engine.switches.get(hv.dpid) if hv.dpid is not None else None
    return {
        "name": hv.name,
        "tep_ip": hv.tep_ip,
        "dpid": f"{hv.dpid:016x}" if hv.dpid is not None else None,
        "ovsdb": engine.ovsdb_connected(name),
        "openflow": rec is not None,
        "flows_desired": len(rec.desired) if rec and rec.desired is not None else None,
        "flows_installed": len(rec.installed) if rec else None,
        "in_sync": bool(rec and rec.in_sync),
        "foreign_flows": rec.foreign if rec else None,
        "flows_rejected": len(rec.rejected) if rec else None,
    }


def _tunnels(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for name, report in sorted(engine.reports.items()):
        remotes = {hv.name: hv.tep_ip for hv in engine.directory.hypervisors()}
        for p in report.ports:
            ids = p.ids()
            if ids.get(contract.OWNER) != contract.OWNER_VALUE or contract.REMOTE not in ids:
                continue
            out.append({"hypervisor": name, "remote": ids[contract.REMOTE],
                        "remote_ip": dict(p.options).get("remote_ip",
                                                         remotes.get(ids[contract.REMOTE])),
                        "port": p.name, "ofport": p.ofport})
    return out
