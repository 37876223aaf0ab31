"""What the directory holds: hypervisors and the endpoints bound on them (plain values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Hypervisor:
    name: str
    tep_ip: str
    dpid: int | None = None  # br-int's datapath id, from OVSDB
    tunnels: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # remote hypervisor name -> ofport of the tunnel port to it on this hypervisor's br-int

    def __hash__(self) -> int:
        return hash((self.name, self.tep_ip, self.dpid, tuple(sorted(self.tunnels.items()))))


@dataclass(frozen=True)
class Endpoint:
    network: str  # "tenant/network"
    mac: str
    ips: tuple[str, ...]
    hypervisor: str
    port: str  # interface name on br-int
    ofport: int
    iface_id: str
    # A learning port (bound without dove-ips): its addresses are what the VM was seen to
    # use (ryu_dove.learning), each unused for learn_idle_s retired; 0: declared addresses.
    learn_idle_s: int = 0
    learned_at: tuple[int, ...] = ()  # unix time each of `ips` was learned (learning ports)
    punt: bool = False  # a learning port still learning: new sources go to the controller
    # The port of a VM being live-migrated that is not the active one: plugged with the
    # same MAC and iface-id as the active port on another hypervisor, it takes over when the
    # VM first speaks on it (docs/migration.md). Known only to its own hypervisor's flows.
    standby: bool = False

    @property
    def learning(self) -> bool:
        return self.learn_idle_s > 0
