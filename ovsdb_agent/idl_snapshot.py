"""What the controller learns about a hypervisor: its IDL replica read into a HypervisorReport.

The report is immutable, so the controller never sees the IDL's rows, which the manager
thread keeps changing. `snapshot()` reads it from scratch; `Snapshots` keeps one per
connection and rebuilds only the ports whose rows changed (reading a python-ovs row costs
microseconds a column, and a hypervisor has a tunnel port per other hypervisor), and is held
to give exactly what `snapshot()` gives (tests/integration/test_ovsdb_manager.py).
"""

from __future__ import annotations

import bisect
from typing import Any

from ovs.db.data import Atom
from ovs.db.types import UuidType

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
    """One connection's reports, each rebuilt from the rows that changed since the last.

    Work per report is in proportion to the rows that changed, not to br-int's ports:
    re-reading and re-sorting the bridge's port set on every change made each VM port cost
    in proportion to the tunnel ports (python-ovs uuids hash in Python; docs/benchmarks.md).
    A Port on br-int is recognised by its row being created or deleted (Port and Interface
    rows are not roots: they exist only while referenced, so joining or leaving a bridge
    creates or deletes them) and checked against the Bridge's `ports` Datum in O(1).
    """

    def __init__(self, conn: str) -> None:
        self.conn = conn
        self._bridge: Any = None  # the uuid of br-int's row when last read
        self._ifaces_of: dict[Any, tuple[Any, ...]] = {}  # br-int's Port uuid -> Interfaces
        self._port_of: dict[Any, Any] = {}  # Interface uuid -> its Port uuid (br-int's)
        self._infos: dict[Any, PortInfo] = {}  # Interface uuid -> its PortInfo
        self._ordered: list[PortInfo] = []  # the PortInfos by name (names are unique)
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
        self._ifaces_of = {p.uuid: tuple(i.uuid for i in p.interfaces) for p in ports}
        self._port_of = {i: p for p, ifaces in self._ifaces_of.items() for i in ifaces}
        self._infos = {i.uuid: _port_info(i) for p in ports for i in p.interfaces}
        self._ordered = sorted(self._infos.values(), key=_name)
        self._ports = tuple(self._ordered)

    def _apply(self, idl: Any, bridge: Any, changes: Changes) -> None:
        port_rows, iface_rows = idl.tables["Port"].rows, idl.tables["Interface"].rows
        touched: set[Any] = set()
        for uuid in changes.get("Port", {}):
            row = port_rows.get(uuid)
            for iface in self._ifaces_of.pop(uuid, ()):
                if self._port_of.get(iface) == uuid:
                    del self._port_of[iface]
                touched.add(iface)
            if row is not None and _holds(bridge, "ports", uuid):
                ifaces = tuple(i.uuid for i in row.interfaces)
                self._ifaces_of[uuid] = ifaces
                self._port_of.update(dict.fromkeys(ifaces, uuid))
                touched.update(ifaces)
        touched.update(u for u in changes.get("Interface", {}) if u in self._port_of)
        moved = False
        for iface in touched:
            row = iface_rows.get(iface) if iface in self._port_of else None
            moved |= self._set_info(iface, None if row is None else _port_info(row))
        if moved:
            self._ports = tuple(self._ordered)

    def _set_info(self, iface: Any, info: PortInfo | None) -> bool:
        """One interface's PortInfo is now `info` (None: not on br-int); True if it moved.
        An equal PortInfo keeps the old object: consumers compare reports by identity."""
        old = self._infos.get(iface)
        if old == info:
            return False
        if old is not None:
            del self._ordered[bisect.bisect_left(self._ordered, old.name, key=_name)]
            del self._infos[iface]
        if info is not None:
            bisect.insort(self._ordered, info, key=_name)
            self._infos[iface] = info
        return True


def _holds(row: Any, column: str, uuid: Any) -> bool:
    """Whether a reference column of `row` holds `uuid`, read from python-ovs's Datum in
    O(1) (the Row attribute would build a Row per reference)."""
    try:
        return Atom(UuidType, uuid) in row._data[column].values
    except (AttributeError, KeyError, TypeError):
        return uuid in {r.uuid for r in getattr(row, column)}


def referenced_uuids(row: Any, column: str) -> frozenset[Any]:
    """The uuids a reference column holds. Read from python-ovs's Datum when it has one: the
    Row attribute builds a Row per reference, for br-int's thousand ports on every port
    plugged (docs/benchmarks.md). The attribute is the fallback."""
    try:
        return frozenset(atom.value for atom in row._data[column].values)
    except (AttributeError, KeyError, TypeError):
        return frozenset(r.uuid for r in getattr(row, column))


def _name(p: PortInfo) -> str:
    return p.name


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
