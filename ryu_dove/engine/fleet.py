"""The hypervisors the controller knows, from the first report to the time they are gone.

A hypervisor is known by its OVSDB reports: its name and TEP (written by dove-join), its br-
int datapath id, and its ports, split into VM ports and our tunnel ports
(ryu_dove.directory.ports). The fleet keeps each one's record in the directory, refuses a
report that claims what another hypervisor holds (ryu_dove.engine.claims), maps datapath ids
and OVSDB connections to names, and remembers when each was last heard.

A hypervisor leaves only when it says so (a report from its own connection without its
name: `dove-join --leave`) or when it has not been heard for the expiry (days by default:
docs/availability.md). Losing its connections changes nothing: its VMs may well still run
and the underlay carry their traffic. Records restored from disk after a restart
(ryu_dove.engine.saved_state) are *stale* until the hypervisor reports again. The fleet also
counts which hypervisors the others' tunnel ports name, which the engine waits for after a
restart.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from ovsdb_agent.reports import HypervisorReport
from ryu_dove.directory import Directory, Hypervisor
from ryu_dove.directory.ports import PortSplit
from ryu_dove.engine.claims import Claims
from ryu_dove.engine.saved_state import Record, SavedHypervisor, encode

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class HypervisorChange:
    """What a report did to a hypervisor's record; `new is old` when nothing changed."""

    name: str
    old: Hypervisor | None
    new: Hypervisor

    @property
    def tep_moved(self) -> bool:
        """New, or renumbered: tunnels everywhere must follow."""
        return self.old is None or self.old.tep_ip != self.new.tep_ip


class Fleet:
    def __init__(self, directory: Directory, wall: Callable[[], float]) -> None:
        self.directory = directory
        self._wall = wall  # Unix time: last-heard times outlive the process (saved_state)
        self.reports: dict[str, HypervisorReport] = {}
        self.ports: dict[str, PortSplit] = {}  # each hypervisor's last report, split
        self.heard: dict[str, float] = {}  # when each was last heard (while connected: now)
        self.stale: set[str] = set()  # restored from disk, not heard since this start
        self.changed: set[str] = set()  # whose saved record is out of date
        self.claims = Claims()
        self._expected: dict[str, frozenset[str]] = {}  # hypervisor -> remotes its tunnels name
        self._named: collections.Counter[str] = collections.Counter()  # remote -> how many name it

    # --- reports --------------------------------------------------------------------------

    def accept(self, report: HypervisorReport) -> HypervisorChange | None:
        """Record a report; None if it is refused (ryu_dove.engine.claims says why)."""
        problem = self.claims.problem(report)
        if problem is not None:
            self.claims.refuse(report, problem)
            return None
        name, tep = report.name, report.tep_ip
        assert name and tep  # (checked by problem())
        self.stale.discard(name)
        self.heard[name] = self._wall()
        self.changed.add(name)
        self.reports[name] = report
        ports = self.ports.setdefault(name, PortSplit())
        _, tunnels_moved = ports.update(report.ports)
        self._set_expected(name, ports.remotes)
        old = self.directory.hypervisor(name)
        hv = self._record(name, tep, report.dpid, old, tunnels_moved)
        self.claims.grant(report, old, hv)
        return HypervisorChange(name, old, hv)

    def _record(self, name: str, tep: str, dpid: int | None, old: Hypervisor | None,
                tunnels_moved: bool) -> Hypervisor:
        ports = self.ports[name]
        if (old is not None and old.tep_ip == tep and old.dpid == dpid
                and (not tunnels_moved or old.tunnels == ports.ofports)):
            return old  # the usual case: a VM port changed; keep the record (and its identity)
        hv = Hypervisor(name, tep, dpid, MappingProxyType(dict(sorted(ports.ofports.items()))))
        if old is None or old.tep_ip != hv.tep_ip:
            LOG.info("hypervisor %s joined with TEP %s", hv.name, hv.tep_ip)
        if old != hv:
            self.directory.put_hypervisor(hv)
        return hv

    def restore(self, saved: SavedHypervisor) -> HypervisorChange | None:
        """Take a record saved before a restart as a stale report; None if refused (its
        name, TEP or datapath id is held by a record taken before it)."""
        report = saved.report
        problem = self.claims.problem(report)
        if problem is not None:
            LOG.error("saved record of %s not restored: %s", report.name, problem)
            return None
        change = self.accept(report)
        assert change is not None and report.name
        self.claims.connection_ended(report.conn)  # held without a connection
        self.stale.add(report.name)
        self.heard[report.name] = saved.last_heard
        self.changed.discard(report.name)  # it is what is on disk
        return change

    def changed_records(self, connected: Callable[[str], bool],
                        ) -> list[tuple[str, Record | None]]:
        """The saved records out of date since the last call: each to encode (on the saved
        state's thread), or None for a hypervisor that is gone."""
        changed, self.changed = self.changed, set()
        now = self._wall()
        records: list[tuple[str, Record | None]] = []
        for name in changed:
            report = self.reports.get(name)
            if report is None:
                records.append((name, None))
                continue
            split = self.ports[name]
            heard = now if connected(name) else self.heard.get(name, now)
            records.append((name, functools.partial(encode, report, split.vm_ports, heard)))
        return records

    # --- leaving ----------------------------------------------------------------------------

    def leaving(self, report: HypervisorReport) -> str | None:
        """The hypervisor that leaves with this report: one whose own connection now says
        it is not joined (dove-join --leave removed its name or TEP)."""
        if report.name and report.tep_ip:
            return None
        return self.claims.held_by(report.conn)

    def connection_lost(self, conn: str) -> None:
        """An OVSDB connection ended. Nothing about the hypervisor changes: only its last
        heard time starts to age."""
        name = self.claims.connection_ended(conn)
        if name is not None:
            LOG.warning("OVSDB connection of %s lost (%s); its flows and tunnels stay",
                        name, conn)
            self.went_quiet(name)

    def went_quiet(self, name: str) -> None:
        """One of its connections ended: it was last heard now."""
        if name in self.reports:
            self.heard[name] = self._wall()
            self.changed.add(name)

    def expired(self, expiry_s: float, connected: Callable[[str], bool],
                counting_since: float) -> list[tuple[str, float]]:
        """The hypervisors unheard for `expiry_s` (0: never), with the seconds since they
        were last heard; silence is counted from `counting_since` at the earliest (the
        controller cannot blame a hypervisor for silence while it was not running)."""
        if expiry_s <= 0:
            return []
        now, gone = self._wall(), []
        for name, heard in self.heard.items():
            silent = now - max(heard, counting_since)
            if silent >= expiry_s and not connected(name):
                gone.append((name, now - heard))
        return gone

    def remove(self, name: str) -> set[str]:
        """Forget a hypervisor and its endpoints; returns the networks that lost endpoints."""
        self.reports.pop(name, None)
        self._set_expected(name, frozenset())
        self.ports.pop(name, None)
        self.heard.pop(name, None)
        self.stale.discard(name)
        self.changed.add(name)  # its saved record goes too
        hv = self.directory.hypervisor(name)
        if hv is not None:
            self.claims.release(hv)
        return self.directory.remove_hypervisor(name)

    # --- questions ------------------------------------------------------------------------

    def name_of_dpid(self, dpid: int) -> str | None:
        return self.claims.name_of_dpid(dpid)

    def ovsdb_connected(self, name: str) -> bool:
        return self.claims.connection_of(name) is not None

    def unheard(self) -> set[str]:
        """Hypervisors that others' tunnel ports name but that have not reported yet."""
        return {n for n in self._named if n not in self.reports}

    def _set_expected(self, name: str, remotes: frozenset[str]) -> None:
        """Keep count of who names whom: a thousand reports each naming 999 others must not
        cost a million set operations per batch while the engine waits for them."""
        old = self._expected.get(name, frozenset())
        if old is remotes or old == remotes:
            return
        self._named.subtract(old - remotes)
        self._named.update(remotes - old)
        for gone in old - remotes:
            if self._named[gone] <= 0:
                del self._named[gone]
        if remotes:
            self._expected[name] = remotes
        else:
            self._expected.pop(name, None)
