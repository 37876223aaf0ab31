"""The endpoint directory (DOVE's connectivity service): who is where.

Fed by hypervisor bindings, read by the flow compiler. `Directory` is the interface; the
in-process `MemoryDirectory` is one implementation, and a shared, replicated backend can
replace it behind the same contract (tests/unit/test_directory_contract.py runs against
every implementation).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
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


class Directory(abc.ABC):
    """What the controller knows of hypervisors and endpoints."""

    @abc.abstractmethod
    def put_hypervisor(self, hv: Hypervisor) -> None: ...

    @abc.abstractmethod
    def remove_hypervisor(self, name: str) -> set[str]:
        """Forget a hypervisor and its endpoints; returns the networks that lost endpoints."""

    @abc.abstractmethod
    def hypervisor(self, name: str) -> Hypervisor | None: ...

    @abc.abstractmethod
    def hypervisors(self) -> tuple[Hypervisor, ...]: ...

    @abc.abstractmethod
    def replace_endpoints(self, hypervisor: str, endpoints: Iterable[Endpoint]) -> set[str]:
        """Make `endpoints` the whole set bound on `hypervisor`; returns networks that changed."""

    @abc.abstractmethod
    def endpoints(self, network: str | None = None) -> tuple[Endpoint, ...]:
        """All endpoints, or those of one network, in a stable order."""

    @abc.abstractmethod
    def by_mac(self, network: str, mac: str) -> Endpoint | None: ...

    @abc.abstractmethod
    def by_ip(self, network: str, ip: str) -> Endpoint | None: ...

    def hosting(self, network: str) -> frozenset[str]:
        """Hypervisors with at least one endpoint in the network."""
        return frozenset(e.hypervisor for e in self.endpoints(network))

    def networks_on(self, hypervisor: str) -> frozenset[str]:
        return frozenset(e.network for e in self.endpoints() if e.hypervisor == hypervisor)


class MemoryDirectory(Directory):
    """The in-process directory: plain dicts owned by the controller's engine thread."""

    def __init__(self) -> None:
        self._hvs: dict[str, Hypervisor] = {}
        self._by_hv: dict[str, dict[str, Endpoint]] = {}  # hypervisor -> port -> endpoint
        self._by_net: dict[str, dict[tuple[str, str], Endpoint]] = {}  # (hv, port) keyed

    def put_hypervisor(self, hv: Hypervisor) -> None:
        self._hvs[hv.name] = hv

    def remove_hypervisor(self, name: str) -> set[str]:
        self._hvs.pop(name, None)
        return self.replace_endpoints(name, ())

    def hypervisor(self, name: str) -> Hypervisor | None:
        return self._hvs.get(name)

    def hypervisors(self) -> tuple[Hypervisor, ...]:
        return tuple(self._hvs[n] for n in sorted(self._hvs))

    def replace_endpoints(self, hypervisor: str, endpoints: Iterable[Endpoint]) -> set[str]:
        new = {e.port: e for e in endpoints}
        old = self._by_hv.get(hypervisor, {})
        changed: set[str] = set()
        for port in old.keys() | new.keys():
            before, after = old.get(port), new.get(port)
            if before == after:
                continue
            if before is not None:
                changed.add(before.network)
                self._by_net[before.network].pop((hypervisor, port), None)
            if after is not None:
                changed.add(after.network)
                self._by_net.setdefault(after.network, {})[(hypervisor, port)] = after
        if new:
            self._by_hv[hypervisor] = new
        else:
            self._by_hv.pop(hypervisor, None)
        return changed

    def endpoints(self, network: str | None = None) -> tuple[Endpoint, ...]:
        if network is not None:
            eps: Iterable[Endpoint] = self._by_net.get(network, {}).values()
        else:
            eps = (e for per_hv in self._by_hv.values() for e in per_hv.values())
        return tuple(sorted(eps, key=lambda e: (e.network, e.hypervisor, e.port)))

    def networks_on(self, hypervisor: str) -> frozenset[str]:
        return frozenset(e.network for e in self._by_hv.get(hypervisor, {}).values())

    def by_mac(self, network: str, mac: str) -> Endpoint | None:
        return next((e for e in self._by_net.get(network, {}).values() if e.mac == mac), None)

    def by_ip(self, network: str, ip: str) -> Endpoint | None:
        return next((e for e in self._by_net.get(network, {}).values() if ip in e.ips), None)
