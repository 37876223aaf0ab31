"""What the controller learns about a hypervisor: its IDL replica read into a HypervisorReport.

The report is immutable and built from scratch after every change, so the controller never
sees the IDL's rows, which the manager thread keeps changing.
"""

from __future__ import annotations

from typing import Any

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo


def snapshot(conn: str, idl: Any) -> HypervisorReport:
    system = next(iter(idl.tables["Open_vSwitch"].rows.values()), None)
    ids = system.external_ids if system is not None else {}
    bridge = integration_bridge(idl)
    ifaces = [] if bridge is None else [i for p in bridge.ports for i in p.interfaces]
    return HypervisorReport(
        conn=conn,
        name=ids.get(contract.HYPERVISOR),
        tep_ip=ids.get(contract.TEP_IP),
        datapath_type=ids.get(contract.DATAPATH_TYPE),
        dpid=None if bridge is None else _dpid(bridge),
        ports=tuple(sorted((_port_info(i) for i in ifaces), key=lambda p: p.name)),
    )


def integration_bridge(idl: Any) -> Any:
    """br-int's Bridge row, or None while it does not exist."""
    bridges = idl.tables["Bridge"].rows.values()
    return next((b for b in bridges if b.name == contract.INTEGRATION_BRIDGE), None)


def _optional(value: Any) -> Any:
    """python-ovs gives an optional column ([0..1] values) as a list."""
    return value[0] if value else None


def _port_info(iface: Any) -> PortInfo:
    ofport = _optional(iface.ofport)
    return PortInfo(
        name=iface.name,
        ofport=None if ofport is None or ofport < 0 else ofport,  # -1: vswitchd failed
        type=iface.type,
        external_ids=tuple(sorted(iface.external_ids.items())),
        options=tuple(sorted(iface.options.items())),
        error=_optional(iface.error),
    )


def _dpid(bridge: Any) -> int | None:
    try:
        return int(_optional(bridge.datapath_id), 16)
    except (TypeError, ValueError):
        return None
