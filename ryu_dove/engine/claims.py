"""Who holds each hypervisor name, TEP and datapath id: the first claim wins.

Any OVSDB server that reaches the manager port can say it is any hypervisor. Until the
channels are authenticated (certificates), the controller still never lets a second peer
take what a first one holds: a report that claims a name held over another live
connection, another hypervisor's TEP or another's datapath id is refused, reported
(`dovectl show refused`) and changes nothing. So are names and TEPs that are not well
formed (ovsdb_agent.contract). A refused report is kept and tried again when a claim is
released (its holder's connection ended, or the holder left), so a hypervisor that
reconnects before its old connection is noticed dead takes over as soon as it is. Over TLS
it does not wait: a new connection whose certificate names the hypervisor takes the name
over at once (the old one can only be a stale connection of the same hypervisor).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ovsdb_agent import contract
from ovsdb_agent.peerlog import RateLimit, printable
from ovsdb_agent.reports import HypervisorReport
from ryu_dove.directory import Hypervisor

LOG = logging.getLogger(__name__)
MAX_HYPERVISORS = 10_000  # known at once: a hypervisor stays known through outages (a week
# by default), so without a bound a peer renaming itself over and over (plain TCP) would
# grow the directory and the saved state without end; ten times the fleet benchmarked


@dataclass(frozen=True)
class ReportRefusal:
    conn: str
    name: str  # as claimed, escaped
    reason: str


class Claims:
    def __init__(self) -> None:
        self._tep: dict[str, str] = {}  # TEP -> the hypervisor that holds it
        self._dpid: dict[int, str] = {}
        self._conn: dict[str, str] = {}  # hypervisor -> the OVSDB connection it reports on
        self._name: dict[str, str] = {}  # and back: connection -> the name it holds
        self._refused: dict[str, tuple[HypervisorReport, ReportRefusal]] = {}  # by connection
        self._log = RateLimit(LOG, burst=20)  # logged once per change, and a flood is bounded

    def problem(self, report: HypervisorReport) -> str | None:
        """Why this report may not be taken, or None."""
        name, tep = report.name, report.tep_ip
        if not name or not tep:
            return (f"not joined: no {contract.HYPERVISOR}/{contract.TEP_IP} "
                    "(run dove-join on that hypervisor)")
        why = contract.name_problem(name) or contract.tep_problem(tep)
        if why is not None:
            return why
        if report.identity is not None and report.identity != name:
            return f"its certificate is for {report.identity}, not {name}"
        holders = ((f"TEP {tep}", self._tep.get(tep, name)),
                   (f"datapath id {report.dpid or 0:016x}",
                    self._dpid.get(report.dpid, name) if report.dpid is not None else name))
        for what, holder in holders:
            if holder != name:
                return f"{what} is held by hypervisor {holder}"
        conn = self._conn.get(name, report.conn)
        if conn != report.conn and report.identity != name:
            return f"hypervisor {name} reports over another connection ({conn})"
        if len(self._tep) >= MAX_HYPERVISORS and name not in self._tep.values():
            return (f"the controller knows {len(self._tep)} hypervisors already, the most it "
                    "keeps (one that leaves or expires makes room)")
        return None

    def refuse(self, report: HypervisorReport, reason: str) -> None:
        refusal = ReportRefusal(report.conn, printable(report.name or "?"), reason)
        old = self._refused.get(report.conn)
        if old is None or old[1] != refusal:
            self._log.log(logging.ERROR, "refused", "OVSDB %s claiming to be %s refused: %s",
                          printable(report.conn), refusal.name, printable(reason))
        self._refused[report.conn] = (report, refusal)

    def grant(self, report: HypervisorReport, old: Hypervisor | None, new: Hypervisor) -> None:
        """The report was taken: its hypervisor holds its name, TEP and datapath id."""
        self._refused.pop(report.conn, None)
        held = self._name.get(report.conn)
        if held is not None and held != new.name and self._conn.get(held) == report.conn:
            self._conn.pop(held, None)  # the connection now says another name
        replaced = self._conn.get(new.name)
        if replaced is not None and replaced != report.conn:  # taken over (TLS)
            self._name.pop(replaced, None)
        self._conn[new.name], self._name[report.conn] = report.conn, new.name
        if old is new:
            return
        if old is not None:
            self._tep.pop(old.tep_ip, None)
            if old.dpid is not None:
                self._dpid.pop(old.dpid, None)
        self._tep[new.tep_ip] = new.name
        if new.dpid is not None:
            self._dpid[new.dpid] = new.name

    def connection_ended(self, conn: str) -> str | None:
        """Forget an OVSDB connection; the hypervisor it held the name of, if any."""
        self._refused.pop(conn, None)
        name = self._name.pop(conn, None)
        if name is None or self._conn.get(name) != conn:
            return None
        del self._conn[name]
        return name

    def held_by(self, conn: str) -> str | None:
        """The hypervisor whose name this connection holds."""
        return self._name.get(conn)

    def connection_of(self, name: str) -> str | None:
        return self._conn.get(name)

    def release(self, hv: Hypervisor) -> None:
        """The hypervisor left: everything it held is free."""
        if self._tep.get(hv.tep_ip) == hv.name:
            del self._tep[hv.tep_ip]
        if hv.dpid is not None and self._dpid.get(hv.dpid) == hv.name:
            del self._dpid[hv.dpid]
        conn = self._conn.pop(hv.name, None)
        if conn is not None:
            self._name.pop(conn, None)

    def waiting(self) -> list[HypervisorReport]:
        """The refused reports, to try again now that something was released."""
        return [report for report, _ in self._refused.values()]

    def refusals(self) -> list[ReportRefusal]:
        return [refusal for _, refusal in self._refused.values()]

    def name_of_dpid(self, dpid: int) -> str | None:
        return self._dpid.get(dpid)
