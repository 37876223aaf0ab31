"""The tunnel ports the controller owns on a hypervisor's br-int: what to change, and the writes.

Owned ports carry contract.OWNER=OWNER_VALUE and contract.REMOTE in external_ids. A plan makes
the owned ports exactly the desired ones: it creates, deletes, or fixes drifted columns, and
replaces an owned port that is not shaped as we create it. Ports without our mark are only
ever read: a desired name one of them holds is a conflict, left alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ovsdb_agent import contract
from ovsdb_agent.idl_session import NAME_INDEX, NAMED_TABLES, Changes
from ovsdb_agent.idl_snapshot import integration_bridge
from ovsdb_agent.idl_snapshot import referenced_uuids as _referenced
from ovsdb_agent.reports import TunnelSpec

TUNNEL_TYPE = "vxlan"

Write = tuple[Any, str, str, str]  # (row, column, key, value): one row.setkey(column, key, value)


@dataclass
class TunnelPlan:
    """What one transaction must do to make br-int's owned tunnel ports equal the desired."""

    bridge: Any
    create: dict[str, TunnelSpec] = field(default_factory=dict)
    delete: list[Any] = field(default_factory=list)  # Port rows
    fix: dict[str, tuple[TunnelSpec, list[Write]]] = field(default_factory=dict)
    conflicts: frozenset[str] = frozenset()  # desired names held by ports we do not own

    def empty(self) -> bool:
        return not (self.create or self.delete or self.fix)

    def names(self) -> set[str]:
        """The port names this plan writes."""
        return {*self.create, *self.fix, *(p.name for p in self.delete)}

    def summary(self) -> str:
        parts = [f"create {n} -> {s.remote} {s.remote_ip}" for n, s in sorted(self.create.items())]
        parts += [f"fix {n} -> {s.remote} {s.remote_ip}" for n, (s, _) in sorted(self.fix.items())]
        parts += [f"delete {p.name}" for p in sorted(self.delete, key=lambda p: p.name)]
        return ", ".join(parts)


def plan_tunnels(idl: Any, desired: Mapping[str, TunnelSpec],
                 only: Collection[str] | None = None) -> TunnelPlan | None:
    """None while br-int does not exist; ports without our mark are only ever read.

    `only`: look at these port names alone (what changed: in the desired set, in the
    database, in our last transaction) instead of every port of br-int, which is slow with
    a thousand tunnels (docs/benchmarks.md); a hypervisor joining changes one name on every
    other one."""
    bridge = integration_bridge(idl)
    if bridge is None:
        return None
    if only is None:
        ports = bridge.ports
    else:
        on_bridge = _referenced(bridge, "ports")
        ports = [p for p in _named(idl, "Port", only) if p.uuid in on_bridge]
        desired = {n: s for n, s in desired.items() if n in only}
    owned = {p.name: p for p in ports if _is_owned_tunnel(p)}
    ours = {p.uuid for p in owned.values()} | {i.uuid for p in owned.values()
                                               for i in p.interfaces}
    taken = {r.name for t in NAMED_TABLES
             for r in (idl.tables[t].rows.values() if only is None else _named(idl, t, only))
             if r.uuid not in ours}
    plan = TunnelPlan(bridge,
                      conflicts=frozenset(n for n in desired if n not in owned and n in taken))
    plan.delete = [p for n, p in owned.items() if n not in desired]
    for name, spec in desired.items():
        port = owned.get(name)
        if port is None:
            if name not in taken:
                plan.create[name] = spec
        elif not _is_sound(port):
            plan.delete.append(port)
            plan.create[name] = spec
        elif writes := _drift(port, spec):
            plan.fix[name] = (spec, writes)
    return plan


def _named(idl: Any, table: str, names: Collection[str]) -> list[Any]:
    """The table's rows with these names: through the name index the manager's IDLs have
    (a lookup each), or a scan of the table (an IDL made without it)."""
    rows = idl.tables[table].rows
    if NAME_INDEX not in getattr(rows, "indexes", {}):
        return [r for r in rows.values() if r.name in names]
    return [r for n in names
            for r in idl.index_equal(table, NAME_INDEX, rows.IndexEntry(name=n))]


def apply_plan(txn: Any, idl: Any, plan: TunnelPlan) -> None:
    """Add the plan's writes to txn, which the caller commits."""
    for port in plan.delete:  # ovsdb-server garbage-collects the Port and its Interface
        plan.bridge.delvalue("ports", port)
    for name, spec in plan.create.items():
        iface = txn.insert(idl.tables["Interface"])
        iface.name = name
        iface.type = TUNNEL_TYPE
        iface.options = _tunnel_options(spec)
        iface.external_ids = _owned_ids(spec)
        port = txn.insert(idl.tables["Port"])
        port.name = name
        port.interfaces = [iface]
        port.external_ids = _owned_ids(spec)
        plan.bridge.addvalue("ports", port)
    for _, writes in plan.fix.values():
        for row, column, key, value in writes:
            row.setkey(column, key, value)


def check_spec(port: str, spec: TunnelSpec) -> None:
    """Raises ValueError for what the database would refuse or OVS could not use."""
    if not port:
        raise ValueError("tunnel port name must not be empty")
    if not _is_ip(spec.remote_ip):
        raise ValueError(f"tunnel port {port}: remote_ip {spec.remote_ip!r} is not an IP "
                         "address")


@lru_cache(maxsize=1 << 16)
def _is_ip(text: str) -> bool:
    """Memoised: every hypervisor is told every other one's TEP, a million checks at 1,000."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _owned_ids(spec: TunnelSpec) -> dict[str, str]:
    return {contract.OWNER: contract.OWNER_VALUE, contract.REMOTE: spec.remote}


def _tunnel_options(spec: TunnelSpec) -> dict[str, str]:
    return {"remote_ip": spec.remote_ip, "key": "flow"}


def _is_owned_tunnel(port: Any) -> bool:
    return contract.is_owned_tunnel(port.external_ids)


def _is_sound(port: Any) -> bool:
    """An owned tunnel port shaped as we create it; anything else is replaced, not patched."""
    ifaces = port.interfaces
    return len(ifaces) == 1 and ifaces[0].name == port.name and ifaces[0].type == TUNNEL_TYPE


def _drift(port: Any, spec: TunnelSpec) -> list[Write]:
    """The writes that bring a sound owned port to its spec."""
    iface = port.interfaces[0]
    want = [(iface, "options", k, v) for k, v in _tunnel_options(spec).items()]
    want += [(row, "external_ids", k, v) for row in (iface, port)
             for k, v in _owned_ids(spec).items()]
    return [w for w in want if getattr(w[0], w[1]).get(w[2]) != w[3]]


def touched_tunnels(changes: Changes | None,
                    desired: Mapping[str, TunnelSpec]) -> set[str] | None:
    """The names of changed rows that matter to the owned tunnel ports: ours, or in the way
    of one we want (its name taken); None: look at all (the first report, or a row that
    cannot be read). Planning every port of br-int is slow with a thousand tunnels
    (docs/benchmarks.md, the OVSDB side), so a VM port coming or going must not cause it."""
    if changes is None:
        return None
    names: set[str] = set()
    for table in ("Port", "Interface"):
        for row in changes.get(table, {}).values():
            try:
                name, ids = row.name, row.external_ids
            except (AttributeError, KeyError):  # a row python-ovs no longer fully holds
                return None
            if name in desired or ids.get(contract.OWNER) == contract.OWNER_VALUE:
                names.add(name)
    return names
