"""The in-process endpoint directory, indexed for the engine's questions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from ryu_dove.directory.base import Directory
from ryu_dove.directory.model import Endpoint, Hypervisor

K = TypeVar("K")


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
        # Standby ports (Endpoint.standby) are on their hypervisor (endpoints_on) and make it
        # host their network, but no lookup by network, MAC or address finds them.
        self._standby: dict[tuple[str, str], dict[tuple[str, str], Endpoint]] = {}
        self._standby_net: dict[str, dict[tuple[str, str], Endpoint]] = {}

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
        if e.standby:
            self._standby.setdefault((e.network, e.mac), {})[where] = e
            self._standby_net.setdefault(e.network, {})[where] = e
            return
        self._by_net.setdefault(e.network, {})[where] = e
        self._by_mac.setdefault((e.network, e.mac), {})[where] = e
        for ip in e.ips:
            self._by_ip.setdefault((e.network, ip), {})[where] = e

    def _unindex(self, hypervisor: str, e: Endpoint) -> None:
        where = (hypervisor, e.port)
        if e.standby:
            _drop(self._standby, (e.network, e.mac), where)
            _drop(self._standby_net, e.network, where)
            return
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
        return frozenset(hv for index in (self._by_net, self._standby_net)
                         for hv, _ in index.get(network, {}))

    def networks_on(self, hypervisor: str) -> frozenset[str]:
        return frozenset(e.network for e in self._by_hv.get(hypervisor, {}).values())

    def by_mac(self, network: str, mac: str) -> Endpoint | None:
        return _first(self._by_mac.get((network, mac)))

    def by_ip(self, network: str, ip: str) -> Endpoint | None:
        return _first(self._by_ip.get((network, ip)))

    def standby(self, network: str, mac: str) -> tuple[Endpoint, ...]:
        return tuple(self._standby.get((network, mac), {}).values())


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
