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
from typing import TypeVar

K = TypeVar("K")


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
        return frozenset(e.network for e in self.endpoints_on(hypervisor))

    def endpoints_on(self, hypervisor: str) -> tuple[Endpoint, ...]:
        """The endpoints bound on one hypervisor, in the same stable order."""
        return tuple(e for e in self.endpoints() if e.hypervisor == hypervisor)


class MemoryDirectory(Directory):
    """The in-process directory: plain dicts owned by the controller's engine thread.

    Indexed for the engine's questions (per network, per hypervisor, by MAC and by address),
    so one binding costs work proportional to its own network, never to the whole directory.
    """

    def __init__(self) -> None:
        self._hvs: dict[str, Hypervisor] = {}
        self._by_hv: dict[str, dict[str, Endpoint]] = {}  # hypervisor -> port -> endpoint
        self._by_net: dict[str, dict[tuple[str, str], Endpoint]] = {}  # (hv, port) keyed
        self._sorted: dict[str, tuple[Endpoint, ...]] = {}  # network -> members, ordered
        self._by_mac: dict[tuple[str, str], dict[tuple[str, str], Endpoint]] = {}
        self._by_ip: dict[tuple[str, str], dict[tuple[str, str], Endpoint]] = {}

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
                self._unindex(hypervisor, before)
            if after is not None:
                changed.add(after.network)
                self._index(hypervisor, after)
        if new:
            self._by_hv[hypervisor] = new
        else:
            self._by_hv.pop(hypervisor, None)
        for net in changed:
            self._sorted.pop(net, None)
        return changed

    def _index(self, hypervisor: str, e: Endpoint) -> None:
        where = (hypervisor, e.port)
        self._by_net.setdefault(e.network, {})[where] = e
        self._by_mac.setdefault((e.network, e.mac), {})[where] = e
        for ip in e.ips:
            self._by_ip.setdefault((e.network, ip), {})[where] = e

    def _unindex(self, hypervisor: str, e: Endpoint) -> None:
        where = (hypervisor, e.port)
        _drop(self._by_net, e.network, where)
        _drop(self._by_mac, (e.network, e.mac), where)
        for ip in e.ips:
            _drop(self._by_ip, (e.network, ip), where)

    def endpoints(self, network: str | None = None) -> tuple[Endpoint, ...]:
        if network is None:
            eps = (e for per_hv in self._by_hv.values() for e in per_hv.values())
            return tuple(sorted(eps, key=_order))
        members = self._sorted.get(network)
        if members is None:
            # In one network _order is the (hypervisor, port) key: sorting the keys compares
            # in C, without a Python call per member.
            by_place = self._by_net.get(network, {})
            members = tuple(map(by_place.__getitem__, sorted(by_place)))
            self._sorted[network] = members
        return members

    def endpoints_on(self, hypervisor: str) -> tuple[Endpoint, ...]:
        return tuple(sorted(self._by_hv.get(hypervisor, {}).values(), key=_order))

    def hosting(self, network: str) -> frozenset[str]:
        return frozenset(hv for hv, _ in self._by_net.get(network, {}))

    def networks_on(self, hypervisor: str) -> frozenset[str]:
        return frozenset(e.network for e in self._by_hv.get(hypervisor, {}).values())

    def by_mac(self, network: str, mac: str) -> Endpoint | None:
        return _first(self._by_mac.get((network, mac)))

    def by_ip(self, network: str, ip: str) -> Endpoint | None:
        return _first(self._by_ip.get((network, ip)))


def _order(e: Endpoint) -> tuple[str, str, str]:
    return (e.network, e.hypervisor, e.port)


def _drop(index: dict[K, dict[tuple[str, str], Endpoint]], key: K,
          where: tuple[str, str]) -> None:
    entries = index.get(key)
    if entries is not None:
        entries.pop(where, None)
        if not entries:
            del index[key]


def _first(entries: Mapping[tuple[str, str], Endpoint] | None) -> Endpoint | None:
    """The earliest bound of several holders (bindings normally allow only one)."""
    return next(iter(entries.values()), None) if entries else None
