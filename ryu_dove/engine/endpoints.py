"""Each hypervisor's endpoints, derived from its VM ports and the policy, and the refusals.

ryu_dove.directory.bindings judges the ports (pure); this applies the verdict to the
directory, keeps the per-hypervisor memo that makes a report re-check only the ports that
changed, keeps the refusals the API shows, and tells the operator what came, went and was
refused (once per change, not once per report).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from ovsdb_agent.peerlog import RateLimit, printable
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory import Directory, Endpoint, bindings
from ryu_dove.learning.settings import DEFAULT, LearnSettings
from ryu_dove.policy import Policy

LOG = logging.getLogger(__name__)


class EndpointResolver:
    def __init__(self, directory: Directory, learn: LearnSettings = DEFAULT) -> None:
        self.directory = directory
        self.learn = learn
        self.refused: dict[str, list[bindings.Refusal]] = {}  # only hypervisors with refusals
        self._memo: dict[str, bindings.PortMemo] = {}  # per hypervisor, this policy
        self._log = RateLimit(LOG, burst=20)  # per hypervisor: a VM can rename its port fast

    def resolve(self, policy: Policy, name: str, vm_ports: Iterable[PortInfo],
                muted: Collection[str] = (),
                active_at: Mapping[tuple[str, str], tuple[str, str]] | None = None,
                ) -> set[str]:
        """Re-derive one hypervisor's endpoints (learning ports named in `muted` without
        their punts); returns the networks that changed."""
        memo = self._memo.setdefault(name, {})
        endpoints, refused = bindings.resolve(policy, self.directory, name, vm_ports, memo,
                                              self.learn, active_at)
        if muted:
            endpoints = [replace(e, punt=False) if e.punt and e.port in muted else e
                         for e in endpoints]
        before = {e.port: e for e in self.directory.endpoints_on(name)}
        changed = self.directory.replace_endpoints(name, endpoints)
        _log_endpoint_changes(name, before, {e.port: e for e in endpoints})
        self._log_refusals(name, refused)
        if refused:
            self.refused[name] = refused
        else:
            self.refused.pop(name, None)
        return changed

    def refused_elsewhere(self, name: str) -> list[str]:
        """Hypervisors other than `name` with refused bindings (a change may lift them)."""
        return [other for other, refusals in self.refused.items()
                if other != name and refusals]

    def forget(self, name: str) -> None:
        self.refused.pop(name, None)
        self._memo.pop(name, None)

    def policy_changed(self) -> None:
        self._memo.clear()  # verdicts were the old policy's

    def _log_refusals(self, hv: str, refused: list[bindings.Refusal]) -> None:
        old = {(r.port, r.reason) for r in self.refused.get(hv, [])}
        for r in refused:
            if (r.port, r.reason) not in old:
                self._log.log(logging.WARNING, hv, "binding refused on %s port %s (iface %s): %s",
                              hv, printable(r.port), printable(r.iface_id or "-"),
                              printable(r.reason))


def _log_endpoint_changes(hv: str, before: dict[str, Endpoint],
                          after: dict[str, Endpoint]) -> None:
    for port in before.keys() - after.keys():
        e = before[port]
        LOG.info("endpoint %s %s %s left %s port %s", e.network, e.mac, ",".join(e.ips), hv,
                 printable(port))
    for port, e in after.items():
        if before.get(port) != e:
            role = " (standby: a migration's destination, active on its first packet)" \
                if e.standby else ""
            LOG.info("endpoint %s %s %s on %s port %s%s", e.network, e.mac, ",".join(e.ips), hv,
                     printable(port), role)
