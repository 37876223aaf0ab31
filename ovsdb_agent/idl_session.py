"""A python-ovs IDL on a connection the hypervisor opened to us, and why such a session ended.

python-ovs's Idl only connects out, from a remote string; the manager accepts connections
instead, so it adopts each accepted stream into an Idl whose schema is cut down to the columns
the reports and the tunnel writes need: less to replicate per hypervisor.
"""

from __future__ import annotations

import os
from typing import Any

import ovs.db.idl
import ovs.jsonrpc
import ovs.reconnect
import ovs.timeval
import ovs.util

from ovsdb_agent.jsonrpc_framing import FramingConnection

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# Only what the reports and the tunnel writes need: less to replicate per hypervisor.
COLUMNS = {
    "Open_vSwitch": ["external_ids", "bridges"],
    "Bridge": ["name", "datapath_id", "ports", "fail_mode", "external_ids"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "ofport", "external_ids", "options", "error"],
}


def idl_schema_json(path: str) -> Any:
    """The vswitch schema cut down to COLUMNS, as JSON. Each connection's IDL needs its own
    schema objects, and building them from the cut-down schema is far cheaper than from the
    whole (docs/benchmarks.md)."""
    helper = ovs.db.idl.SchemaHelper(location=path)
    for table, columns in COLUMNS.items():
        helper.register_columns(table, columns)
    return helper.get_idl_schema().to_json()


NAME_INDEX = "name"  # Port and Interface rows by name (python-ovs custom index)
NAMED_TABLES = ("Port", "Interface")
Changes = dict[str, dict[Any, Any]]  # table name -> row uuid -> the row (deleted ones too)


class TrackingIdl(ovs.db.idl.Idl):  # type: ignore[misc]
    """An Idl that remembers which rows changed (python-ovs calls notify() for each), so a
    report can be rebuilt from them: a hypervisor holds a tunnel port per other hypervisor,
    and reading every row back for every VM plugged was the manager's largest cost
    (docs/benchmarks.md, the OVSDB side)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._changes: Changes | None = None  # None: everything, until the first take

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        if self._changes is not None:
            self._changes.setdefault(row._table.name, {})[row.uuid] = row

    def take_changes(self) -> Changes | None:
        """The rows changed since the last call; None the first time (all of them)."""
        changes, self._changes = self._changes, {}
        return changes


def adopt_stream(stream: Any, conn: str, schema_json: Any, probe_interval_ms: int) -> Any:
    """An IDL replicating the Open_vSwitch database over an accepted connection."""
    helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)  # the IDL will mutate its schema
    helper.register_all()  # schema_json holds only COLUMNS already
    # Idl opens a session from a remote string; open it on a placeholder and swap in a
    # session that adopts the connection we accepted.
    idl = TrackingIdl("unix:/nonexistent/placeholder", helper, leader_only=False)
    for table in NAMED_TABLES:  # before any row arrives: python-ovs keeps them up to date
        idl.index_create(table, NAME_INDEX).add_column("name")
    idl.close()
    rpc = FramingConnection(stream)
    rpc.name = conn
    session = ovs.jsonrpc.Session.open_unreliably(rpc)
    session.rpc = rpc  # python-ovs 4.0's open_unreliably drops the connection it was given
    session.reconnect.set_probe_interval(probe_interval_ms)
    idl._session = session
    # Idl.run (re)starts its protocol when the session's seqno differs from _last_seqno: a new
    # session's seqno is 0 and a new Idl's _last_seqno None, so the first run asks for the dump.
    assert session.get_seqno() != idl._last_seqno
    return idl


def probe_expired(session: Any) -> bool:
    """True when this run will drop the session for an unanswered inactivity probe."""
    fsm = session.reconnect
    return bool(fsm.state is ovs.reconnect.Reconnect.Idle and fsm.probe_interval
                and ovs.timeval.msec() >= fsm.state_entered + fsm.probe_interval)


def disconnect_reason(rpc: Any, probe_expired: bool) -> str:
    """Why a session ended, for the log: rpc is the connection it had before the run."""
    if probe_expired:
        return "no reply to the inactivity probe"
    status = rpc.get_status() if rpc is not None else 0
    if status == ovs.util.EOF:
        return "connection closed by the hypervisor"
    return os.strerror(status) if status > 0 else "connection lost"
