"""One hypervisor's br-int ports as the engine needs them, kept from report to report.

A report is a whole snapshot, and at a thousand hypervisors it holds a tunnel port per other
hypervisor: scanning every port's external_ids on every report was the engine's largest
single cost per endpoint event (docs/benchmarks.md, "Report ports by identity"). Reports
list ports in name order and the OVSDB manager reuses the PortInfo of every row that did not
change (ovsdb_agent/idl_snapshot), so the part of a report that differs from the last one is
found by comparing the two tuples (in C, identical objects compare at once; a binary search
finds the common head and tail), and only the ports in between are classified. The tunnel-
derived values are rebuilt only when a tunnel port is among them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo


class PortSplit:
    def __init__(self) -> None:
        self._last: tuple[PortInfo, ...] = ()
        self._vms: dict[str, PortInfo] = {}  # by port name (unique on a bridge)
        self._tunnels: dict[str, PortInfo] = {}  # owned tunnel ports
        self.vm_ports: list[PortInfo] = []  # in name order, as the report lists them
        self.remotes: frozenset[str] = frozenset()  # whom this hypervisor's tunnels lead to
        self.ofports: dict[str, int] = {}  # remote -> ofport, of the tunnels numbered

    def update(self, ports: Sequence[PortInfo]) -> tuple[bool, bool]:
        """Take a report's ports; say whether (VM ports, tunnel ports) may have changed."""
        ports, last = tuple(ports), self._last
        if ports == last:
            return False, False
        head = _common_head(ports, last)
        tail = _common_head(ports[head:][::-1], last[head:][::-1])
        vms_moved = tunnels_moved = False
        for port in last[head:len(last) - tail]:
            vms_moved |= self._vms.pop(port.name, None) is not None
            tunnels_moved |= self._tunnels.pop(port.name, None) is not None
        for port in ports[head:len(ports) - tail]:
            kind = _kind(port)
            if kind == "vm":
                self._vms[port.name] = port
                vms_moved = True
            elif kind == "tunnel":
                self._tunnels[port.name] = port
                tunnels_moved = True
        self._last = ports
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


def _common_head(a: tuple[PortInfo, ...], b: tuple[PortInfo, ...]) -> int:
    """How many leading ports a and b share (binary search over C tuple comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _kind(port: PortInfo) -> str | None:
    """"vm" for a port bound to a network or one a policy port mapping may bind (an
    iface-id or vm-id, as libvirt and os-vif write), "tunnel" for a tunnel port ryu_dove
    owns."""
    ids = dict(port.external_ids)
    if contract.NETWORK in ids or contract.IFACE_ID in ids or contract.VM_ID in ids:
        return "vm"
    if contract.is_owned_tunnel(ids):
        return "tunnel"
    return None


def _name(port: PortInfo) -> str:
    return port.name
