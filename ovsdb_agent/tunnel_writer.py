"""Writing a hypervisor's tunnel ports: through one connection, one transaction at a time.

A transaction is committed without blocking and its outcome read in later loop rounds; after a
failure the next attempt waits 1 s, doubling up to 30 s, so a database that keeps refusing is
not hammered. TunnelWriter is that state for one connection; WriterElection picks the one
connection of a hypervisor that may write. What is desired is the manager's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import ovs.db.idl
import ovs.timeval

from ovsdb_agent import contract
from ovsdb_agent.reports import TunnelSpec
from ovsdb_agent.tunnel_ports import TunnelPlan, apply_plan, plan_tunnels

RETRY_MIN_S = 1.0  # backoff after a failed tunnel transaction, doubling up to RETRY_MAX_S
RETRY_MAX_S = 30.0
_Txn = ovs.db.idl.Transaction


class TunnelWriter:
    """The tunnel transaction state of one connection; logs through the connection's log."""

    def __init__(self, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self.log = log
        self.dirty = False  # tunnels need a look: desired state, database or a txn changed
        self.scope: set[str] = set()  # ...at these names only; empty when dirty: at all
        self.txn: Any = None
        self.txn_id = 0
        self.txn_summary = ""
        self.backoff_s = 0.0
        self.retry_at = 0.0  # ovs.timeval.msec() before which no new tunnel txn is tried
        self.waiting_for_bridge = False
        self.conflicts: frozenset[str] = frozenset()
        self.txn_names: set[str] = set()

    @property
    def busy(self) -> bool:
        return self.txn is not None

    def look(self, names: Collection[str] | None = None) -> None:
        """The ports need a look: at these names, or (None) at all of them."""
        if names is None or (self.dirty and not self.scope):
            self.scope = set()  # everything
        else:
            self.scope.update(names)
        self.dirty = True

    def retry_now(self, names: Collection[str] | None = None) -> None:
        """A new desired state: look now, even during a backoff."""
        self.look(names)
        self.retry_at, self.backoff_s = 0.0, 0.0

    def due(self) -> bool:
        """The ports need a look, no transaction is in flight and no backoff is running."""
        return self.txn is None and self.dirty and ovs.timeval.msec() >= self.retry_at

    def wait(self, wants: Any) -> None:
        """Ask the loop to run the connection when the backoff ends."""
        if self.dirty and self.txn is None and self.retry_at > ovs.timeval.msec():
            wants.timer_wait_until(self.retry_at)

    def write(self, idl: Any, hypervisor: str, desired: Mapping[str, TunnelSpec],
              txn_ids: Iterator[int]) -> None:
        """Commit what makes br-int's owned tunnel ports equal desired, if anything."""
        scope, self.scope, self.dirty = self.scope, set(), False
        plan = plan_tunnels(idl, desired, scope or None)
        self._note_waiting(plan, scoped=bool(scope))
        if plan is not None and not plan.empty():
            self._commit(idl, hypervisor, plan, txn_ids)

    def finish(self) -> bool:
        """Read the transaction's status; True when it ended in this call, failed or not."""
        if self.txn is None:
            return False
        status = self.txn.commit()  # after the first call this only reads the status
        if status == _Txn.INCOMPLETE:
            return False
        txn, self.txn = self.txn, None
        if status in (_Txn.SUCCESS, _Txn.UNCHANGED):
            self.look(self.txn_names)  # confirm what it wrote, not every port again
            self.backoff_s = 0.0
            self.log.info("txn %d: done", self.txn_id)
            return True
        self.look()
        self.backoff_s = min(RETRY_MAX_S, max(RETRY_MIN_S, self.backoff_s * 2))
        self.retry_at = ovs.timeval.msec() + self.backoff_s * 1000.0
        level = logging.ERROR if status == _Txn.ERROR else logging.WARNING
        self.log.log(level, "txn %d (%s) failed: %s; retrying in %.0f s", self.txn_id,
                     self.txn_summary, txn.get_error(), self.backoff_s)
        return True

    def _note_waiting(self, plan: TunnelPlan | None, scoped: bool) -> None:
        """Log waiting for br-int and name conflicts once per change, not once per round
        (a plan of some names only sees their conflicts: those are added, not replaced)."""
        if (plan is None) != self.waiting_for_bridge:
            self.waiting_for_bridge = plan is None
            if plan is None:
                self.log.info("no %s yet; tunnels follow when it appears",
                              contract.INTEGRATION_BRIDGE)
        conflicts = plan.conflicts if plan is not None else frozenset()
        if scoped and plan is not None:
            conflicts = self.conflicts | conflicts
        if conflicts != self.conflicts:
            self.conflicts = conflicts
            if conflicts:
                self.log.warning("not creating tunnel ports %s: ports of that name exist "
                                 "without %s=%s", ", ".join(sorted(conflicts)), contract.OWNER,
                                 contract.OWNER_VALUE)

    def _commit(self, idl: Any, hypervisor: str, plan: TunnelPlan,
                txn_ids: Iterator[int]) -> None:
        txn = _Txn(idl)
        self.txn, self.txn_id, self.txn_summary = txn, next(txn_ids), plan.summary()
        self.txn_names = plan.names()
        try:
            txn.add_comment(f"ryu_dove txn {self.txn_id}: tunnel ports of {hypervisor}")
            apply_plan(txn, idl, plan)
            txn.commit()  # non-blocking: the reply is looked at in later rounds
        except Exception:
            txn.abort()
            self.txn = None
            raise
        self.log.info("txn %d: %s", self.txn_id, self.txn_summary)


class WriterElection:
    """Tunnel writes for a hypervisor name go through its newest connection, one transaction at
    a time: two connections to one database (a reconnect before the old connection timed out,
    or two manager targets) would otherwise race to create the same missing port, and the
    loser fails on Port's unique name. Connections are known by their reactor party."""

    def __init__(self, wake_soon: Callable[[int], None]) -> None:
        self._by_name: dict[str, set[int]] = {}
        self._writers: dict[int, TunnelWriter] = {}
        self._wake_soon = wake_soon  # runs a party in the next loop round

    def parties(self, name: str) -> set[int]:
        """The connections that report name."""
        return self._by_name.get(name, set())

    def join(self, name: str, party: int, writer: TunnelWriter) -> list[int]:
        """The connection party reports name now; returns the others that report it."""
        others = self._by_name.setdefault(name, set())
        before = list(others)
        others.add(party)
        self._writers[party] = writer
        return before

    def leave(self, name: str | None, party: int) -> None:
        """The connection no longer reports name, or is gone."""
        self._writers.pop(party, None)
        if name is None or name not in self._by_name:
            return
        self._by_name[name].discard(party)
        if not self._by_name[name]:
            del self._by_name[name]
        else:
            self._kick(name)  # an older connection may be the writer now

    def is_writer(self, name: str | None, party: int) -> bool:
        parties = self._by_name.get(name, set()) if name is not None else set()
        return party == max(parties, default=None) and not any(
            self._writers[p].busy for p in parties if p != party)

    def txn_finished(self, name: str | None, party: int) -> None:
        if name in self._by_name and not self.is_writer(name, party):
            self._kick(name)  # it may have waited for this transaction

    def clear(self) -> None:
        self._by_name.clear()
        self._writers.clear()

    def _kick(self, name: str) -> None:
        party = max(self._by_name[name])
        self._writers[party].look()
        self._wake_soon(party)
