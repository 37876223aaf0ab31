"""What the controller learns about a hypervisor: its IDL replica read into a HypervisorReport.

The report is immutable, so the controller never sees the IDL's rows, which the manager
thread keeps changing. `snapshot()` reads it from scratch; `Snapshots` keeps one per
connection and rebuilds only the ports whose rows changed (reading a python-ovs row costs
microseconds a column, and a hypervisor has a tunnel port per other hypervisor), and is held
to give exactly what `snapshot()` gives (tests/integration/test_ovsdb_manager.py).
"""

from __future__ import annotations

from typing import Any

from ovsdb_agent import contract
from ovsdb_agent.idl_session import Changes
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


class Snapshots:
    """One connection's reports, each rebuilt from the rows that changed since the last."""

    def __init__(self, conn: str) -> None:
        self.conn = conn
        self._bridge: Any = None  # the uuid of br-int's row when last read
        self._bridge_ports: frozenset[Any] = frozenset()  # Port uuids on br-int
        self._ifaces_of: dict[Any, tuple[Any, ...]] = {}  # Port uuid -> its Interface uuids
        self._infos: dict[Any, PortInfo] = {}  # Interface uuid -> its PortInfo
        self._ports: tuple[PortInfo, ...] = ()

    def take(self, idl: Any, changes: Changes | None) -> HypervisorReport:
        """The report now; `changes` as TrackingIdl.take_changes() gives them."""
        bridge = integration_bridge(idl)
        if changes is None or bridge is None or bridge.uuid != self._bridge:
            self._reread(bridge)
        else:
            self._apply(idl, bridge, changes)
        system = next(iter(idl.tables["Open_vSwitch"].rows.values()), None)
        ids = system.external_ids if system is not None else {}
        return HypervisorReport(
            conn=self.conn, name=ids.get(contract.HYPERVISOR), tep_ip=ids.get(contract.TEP_IP),
            datapath_type=ids.get(contract.DATAPATH_TYPE),
            dpid=None if bridge is None else _dpid(bridge), ports=self._ports)

    def _reread(self, bridge: Any) -> None:
        self._bridge = None if bridge is None else bridge.uuid
        ports = [] if bridge is None else bridge.ports
        self._bridge_ports = frozenset(p.uuid for p in ports)
        self._ifaces_of = {p.uuid: tuple(i.uuid for i in p.interfaces) for p in ports}
        self._infos = {i.uuid: _port_info(i) for p in ports for i in p.interfaces}
        self._ports = _in_order(self._infos.values())

    def _apply(self, idl: Any, bridge: Any, changes: Changes) -> None:
        port_rows, iface_rows = idl.tables["Port"].rows, idl.tables["Interface"].rows
        if bridge.uuid in changes.get("Bridge", {}):
            self._bridge_ports = referenced_uuids(bridge, "ports")
        for uuid in changes.get("Port", {}):
            row = port_rows.get(uuid)
            if row is None:
                self._ifaces_of.pop(uuid, None)
            else:
                self._ifaces_of[uuid] = tuple(i.uuid for i in row.interfaces)
        wanted = {i for p in self._bridge_ports for i in self._ifaces_of.get(p, ())}
        changed = changes.get("Interface", {})
        before, self._infos, reread = self._infos, {}, False
        for uuid in wanted:
            info = before.get(uuid)
            if info is None or uuid in changed:
                row = iface_rows.get(uuid)
                if row is None:
                    continue
                info, reread = _port_info(row), True
            self._infos[uuid] = info
        if reread or self._infos.keys() != before.keys():
            self._ports = _in_order(self._infos.values())


def referenced_uuids(row: Any, column: str) -> frozenset[Any]:
    """The uuids a reference column holds. Read from python-ovs's Datum when it has one: the
    Row attribute builds a Row per reference (4.8 ms for br-int's thousand ports, on every
    port plugged; 0.1 ms this way). The attribute is the fallback."""
    try:
        return frozenset(atom.value for atom in row._data[column].values)
    except (AttributeError, KeyError, TypeError):
        return frozenset(r.uuid for r in getattr(row, column))


def _in_order(infos: Any) -> tuple[PortInfo, ...]:
    return tuple(sorted(infos, key=lambda p: p.name))


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
