"""Learned addresses written back to a hypervisor's OVSDB (Interface external_ids
dove-learned-ips), so that they outlive a controller restart.

The controller names, per hypervisor, the VM interfaces whose value it wants and the value
(an empty value when none is left); the manager keeps that until told otherwise and makes
the rows say it through the hypervisor's writing connection, one transaction at a time.
Only rows that exist and are VM ports (an attached-mac, not a tunnel ryu_dove owns) are
written; a row that is missing is written when it appears (a VM port plugged again after a
migration).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ovs.db.idl
import ovs.timeval

from ovsdb_agent import contract
from ovsdb_agent.tunnel_ports import _named

_Txn = ovs.db.idl.Transaction
RETRY_S = 1.0


class LearnedWriter:
    """The learned-address transaction state of one connection."""

    def __init__(self, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self.log = log
        self.dirty = False
        self.txn: Any = None
        self.retry_at = 0.0

    def look(self) -> None:
        self.dirty = True

    def due(self) -> bool:
        return self.txn is None and self.dirty and ovs.timeval.msec() >= self.retry_at

    def wait(self, wants: Any) -> None:
        if self.dirty and self.txn is None and self.retry_at > ovs.timeval.msec():
            wants.timer_wait_until(self.retry_at)

    def write(self, idl: Any, desired: Mapping[str, str]) -> None:
        """Commit what makes the named VM interfaces' values equal desired, if anything."""
        self.dirty = False
        writes = [(row, value) for row in _named(idl, "Interface", desired)
                  if _is_vm_port(row) and (value := desired[row.name])
                  != row.external_ids.get(contract.LEARNED_IPS)]
        if not writes:
            return
        txn = _Txn(idl)
        txn.add_comment(f"ryu_dove: learned addresses of {len(writes)} ports")
        for row, value in writes:
            row.setkey("external_ids", contract.LEARNED_IPS, value)
        self.txn = txn
        txn.commit()

    def finish(self) -> None:
        if self.txn is None:
            return
        status = self.txn.commit()
        if status == _Txn.INCOMPLETE:
            return
        txn, self.txn = self.txn, None
        if status not in (_Txn.SUCCESS, _Txn.UNCHANGED):
            self.log.warning("learned addresses not written: %s; retrying", txn.get_error())
            self.retry_at = ovs.timeval.msec() + RETRY_S * 1000.0
        self.dirty = True  # confirm against what the database now says


def _is_vm_port(row: Any) -> bool:
    ids = row.external_ids
    return contract.ATTACHED_MAC in ids and not contract.is_owned_tunnel(ids)
