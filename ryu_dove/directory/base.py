"""The endpoint directory (DOVE's connectivity service): who is where.

Fed by hypervisor bindings, read by the flow compiler. `Directory` is the interface; the
in-process `MemoryDirectory` (ryu_dove.directory.memory) is one implementation, and a shared,
replicated backend can replace it behind the same contract
(tests/unit/test_directory_contract.py runs against every implementation).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

from ryu_dove.directory.model import Endpoint, Hypervisor


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
        """All endpoints (standby ports too), or the active ones of one network, in a
        stable order."""

    @abc.abstractmethod
    def by_mac(self, network: str, mac: str) -> Endpoint | None:
        """The active endpoint with that MAC (a standby port is never found)."""

    @abc.abstractmethod
    def by_ip(self, network: str, ip: str) -> Endpoint | None:
        """The active endpoint with that address."""

    def hosting(self, network: str) -> frozenset[str]:
        """Hypervisors with at least one endpoint in the network (a standby port counts:
        its hypervisor is made ready for the VM that may move there)."""
        return frozenset(e.hypervisor for e in self.endpoints() if e.network == network)

    def standby(self, network: str, mac: str) -> tuple[Endpoint, ...]:
        """The standby ports of a VM being migrated (Endpoint.standby)."""
        return tuple(e for e in self.endpoints()
                     if e.standby and (e.network, e.mac) == (network, mac))

    def networks_on(self, hypervisor: str) -> frozenset[str]:
        return frozenset(e.network for e in self.endpoints_on(hypervisor))

    def endpoints_on(self, hypervisor: str) -> tuple[Endpoint, ...]:
        """The endpoints bound on one hypervisor, in the same stable order."""
        return tuple(e for e in self.endpoints() if e.hypervisor == hypervisor)
