"""One accepted hypervisor connection, as the OVSDB manager's thread keeps it: its IDL, the
hypervisor it says it is, its last report, its tunnel writes, and a logger that names it."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ovsdb_agent.idl_snapshot import Snapshots
from ovsdb_agent.learned_writer import LearnedWriter
from ovsdb_agent.reports import HypervisorReport
from ovsdb_agent.tunnel_writer import TunnelWriter

# The manager's logger: these records belong to its connections (log filters select it).
LOG = logging.getLogger("ovsdb_agent.manager")


class ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes messages with the hypervisor in operator terms: "OVSDB of hv2 (tcp:...)"."""

    def __init__(self, conn: OvsdbConnection) -> None:
        super().__init__(LOG, {})
        self.conn = conn

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = {"hypervisor": self.conn.hypervisor, "ovsdb_conn": self.conn.peer}
        return f"OVSDB of {self.conn.who}: {msg}", {**kwargs, "extra": extra}


@dataclass(eq=False)
class OvsdbConnection:
    """The manager thread's state for one accepted connection."""

    party: int
    peer: str  # the connection's name in logs and reports (their `conn`): tcp:IP:PORT
    idl: Any
    hypervisor: str | None = None  # the name it reports (Open_vSwitch external_ids)
    identity: str | None = None  # the name on its TLS certificate (None: plain TCP)
    report: HypervisorReport | None = None
    seen_seqno: int = 0  # idl.change_seqno at the last report
    snapshots: Snapshots = field(init=False)
    log: ConnectionLog = field(init=False)
    tunnels: TunnelWriter = field(init=False)
    learned: LearnedWriter = field(init=False)

    def __post_init__(self) -> None:
        self.log = ConnectionLog(self)
        self.tunnels = TunnelWriter(self.log)
        self.learned = LearnedWriter(self.log)
        self.snapshots = Snapshots(self.peer)

    @property
    def who(self) -> str:
        return f"{self.hypervisor} ({self.peer})" if self.hypervisor else self.peer

    @property
    def session(self) -> Any:
        return self.idl._session

    @property
    def monitoring(self) -> bool:
        return bool(self.idl.state == self.idl.IDL_S_MONITORING)
