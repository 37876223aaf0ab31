"""One hypervisor's br-int ports as the engine needs them, kept from report to report.

A report is a whole snapshot, and at a thousand hypervisors it holds a tunnel port per other
hypervisor: scanning every port's external_ids on every report was the engine's largest
single cost per endpoint event (0.5 ms of ~2.4). The OVSDB manager builds a report from the
rows that changed and reuses the PortInfo of every other row (ovsdb_agent/idl_snapshot), so
here ports are told apart by identity: only port objects not seen in the last report are
classified, and the tunnel-derived values are rebuilt only when a tunnel port changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo


class PortSplit:
    def __init__(self) -> None:
        self._seen: dict[int, PortInfo] = {}  # id(port) -> port, holding it so ids stay unique
        self._vms: dict[int, PortInfo] = {}
        self._tunnels: dict[int, PortInfo] = {}  # owned tunnel ports: (remote, ofport) below
        self.vm_ports: list[PortInfo] = []  # in name order, as the report lists them
        self.remotes: frozenset[str] = frozenset()  # whom this hypervisor's tunnels lead to
        self.ofports: dict[str, int] = {}  # remote -> ofport, of the tunnels numbered

    def update(self, ports: Sequence[PortInfo]) -> tuple[bool, bool]:
        """Take a report's ports; say whether (VM ports, tunnel ports) changed."""
        now = dict(zip(map(id, ports), ports, strict=True))
        before = self._seen
        if now.keys() == before.keys():
            return False, False
        vms_moved = tunnels_moved = False
        for key in before.keys() - now.keys():
            vms_moved |= self._vms.pop(key, None) is not None
            tunnels_moved |= self._tunnels.pop(key, None) is not None
        for key in now.keys() - before.keys():
            port = now[key]
            kind = _kind(port)
            if kind == "vm":
                self._vms[key] = port
                vms_moved = True
            elif kind == "tunnel":
                self._tunnels[key] = port
                tunnels_moved = True
        self._seen = now
        if vms_moved:
            self.vm_ports = sorted(self._vms.values(), key=_name)
        if tunnels_moved:
            self._derive_tunnels()
        return vms_moved, tunnels_moved

    def _derive_tunnels(self) -> None:
        remotes, ofports = set(), {}
        for port in sorted(self._tunnels.values(), key=_name):  # the last by name wins
            remote = dict(port.external_ids)[contract.REMOTE]
            remotes.add(remote)
            if port.ofport is not None and port.ofport > 0:
                ofports[remote] = port.ofport
        if remotes != self.remotes:
            self.remotes = frozenset(remotes)
        self.ofports = ofports


def _kind(port: PortInfo) -> str | None:
    """"vm" for a port bound to a network, "tunnel" for a tunnel port ryu_dove owns."""
    network = remote = owner = None
    for key, value in port.external_ids:
        if key == contract.NETWORK:
            network = value
        elif key == contract.REMOTE:
            remote = value
        elif key == contract.OWNER:
            owner = value
    if network is not None:
        return "vm"
    if remote is not None and owner == contract.OWNER_VALUE:
        return "tunnel"
    return None


def _name(port: PortInfo) -> str:
    return port.name
