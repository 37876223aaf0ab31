"""What the OVSDB manager tells the controller about a hypervisor, and what it is asked to write.

Plain immutable values with no OVS imports, so the controller can use them without the manager.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortInfo:
    """One Interface of a Port on br-int (for a VM port, the Interface carries the contract ids)."""

    name: str
    ofport: int | None  # None until ovs-vswitchd assigns one, or when it failed (-1)
    type: str  # "" for a system port, "internal", "vxlan", ...
    external_ids: tuple[tuple[str, str], ...]  # sorted by key
    options: tuple[tuple[str, str], ...]  # sorted by key
    error: str | None  # ovs-vswitchd's complaint about this interface, if any

    def ids(self) -> dict[str, str]:
        return dict(self.external_ids)

    def opts(self) -> dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True)
class HypervisorReport:
    """A consistent snapshot of one hypervisor's OVSDB, taken after a change."""

    conn: str  # the OVSDB connection, e.g. "tcp:203.0.113.2:53412"; changes on reconnect
    name: str | None  # Open_vSwitch external_ids dove-hypervisor (None: not joined)
    tep_ip: str | None  # Open_vSwitch external_ids dove-tep-ip
    datapath_type: str | None  # Open_vSwitch external_ids dove-datapath-type
    dpid: int | None  # br-int's datapath_id; None while br-int is missing or has none yet
    ports: tuple[PortInfo, ...]  # every Interface of every Port on br-int, sorted by name
    identity: str | None = None  # the name on the peer's TLS certificate; None over plain TCP

    def port(self, name: str) -> PortInfo | None:
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True)
class TunnelSpec:
    """A VXLAN tunnel port the controller wants on a hypervisor's br-int."""

    remote_ip: str  # the far end's tunnel endpoint (its dove-tep-ip)
    remote: str  # the far end's hypervisor name, recorded as external_ids dove-remote
