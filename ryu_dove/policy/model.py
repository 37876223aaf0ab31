"""The tenant policy as frozen values: parsed once, never mutated.

Positions (``where``) are kept for messages but excluded from equality and
hashing, so two policies that differ only in layout compare equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from types import MappingProxyType
from typing import Literal, TypeVar

Proto = Literal["icmp", "tcp", "udp", "any"]
IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

PROTOS: tuple[Proto, ...] = ("icmp", "tcp", "udp", "any")
PORT_PROTOS: tuple[Proto, ...] = ("tcp", "udp")
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
VNI_MIN, VNI_MAX = 1, 2**24 - 1
PORT_MIN, PORT_MAX = 1, 65535

_K = TypeVar("_K", bound=str)
_V = TypeVar("_V")


@dataclass(frozen=True)
class Where:
    """Where a policy element was written."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Network:
    """One virtual network (one VNI, one subnet) of a tenant."""

    tenant: str
    name: str
    vni: int
    subnet: IPNetwork
    gateway: IPAddress
    where: Where = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    def contains(self, ip: str | IPAddress) -> bool:
        """True if ``ip`` is in this network's subnet; raises ValueError on a malformed string."""
        address = ip_address(ip) if isinstance(ip, str) else ip
        return address in self.subnet

    def host_problem(self, ip: str) -> str | None:
        """Why ``ip`` cannot be an endpoint's address on this network, or None when it can."""
        try:
            addr = ip_address(ip)
        except ValueError:
            return f"not an IP address: {ip!r}"
        if addr not in self.subnet:
            return f"{ip} is outside {self.key}'s subnet {self.subnet}"
        if addr == self.gateway:
            return f"{ip} is {self.key}'s gateway address"
        if addr == self.subnet.network_address or (
                addr.version == 4 and addr == self.subnet.broadcast_address):
            return f"{ip} is not a host address of {self.subnet}"
        return None


@dataclass(frozen=True)
class Rule:
    """Allow ``proto``/``ports`` from network ``src`` to ``dst`` of one tenant.

    One-directional: the controller lets replies of allowed flows back
    statefully, but ``dst`` cannot open connections to ``src``.
    """

    tenant: str
    src: str
    dst: str
    proto: Proto
    ports: tuple[int, int] | None  # inclusive range; only for tcp/udp
    where: Where = field(compare=False, repr=False)

    @property
    def port_text(self) -> str:
        """The ports as the policy writes them: "5432", "8000-8080", "" for every port."""
        if self.ports is None:
            return ""
        low, high = self.ports
        return str(low) if low == high else f"{low}-{high}"

    def matches(self, proto: str, port: int | None) -> bool:
        """Does traffic with this protocol and destination port fall under the rule?

        ``proto`` is the packet's protocol; asking with "any" only matches
        rules for any protocol. A port-restricted rule never matches port None.
        """
        if self.proto == "any":
            return True
        if proto != self.proto:
            return False
        if self.ports is None:
            return True
        return port is not None and self.ports[0] <= port <= self.ports[1]


PortKey = Literal["iface-id", "vm-id"]
PORT_KEYS: tuple[PortKey, ...] = ("iface-id", "vm-id")
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class PortMapping:
    """Bind VM ports whose Interface says only what libvirt or os-vif write (iface-id,
    attached-mac, vm-id) to a network of the tenant: by `key` equal to `pattern`, or
    matching it as a glob (`*`, `?`, `[...]`) when it has one of those characters."""

    tenant: str
    network: str
    key: PortKey
    pattern: str
    where: Where = field(compare=False, repr=False)

    @property
    def exact(self) -> bool:
        return not GLOB_CHARS & set(self.pattern)

    def describe(self) -> str:
        return f"{self.tenant}: {self.key} {self.pattern!r} -> {self.network} ({self.where})"


@dataclass(frozen=True)
class Tenant:
    """A tenant's networks (by name, sorted), its rules (in file order) and its port
    mappings (in file order)."""

    name: str
    networks: Mapping[str, Network]
    rules: tuple[Rule, ...]
    where: Where = field(compare=False, repr=False)
    ports: tuple[PortMapping, ...] = ()

    def __post_init__(self) -> None:
        # Copy into read-only views so a caller's dict cannot change us later.
        object.__setattr__(self, "networks", _frozen_sorted(self.networks))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "ports", tuple(self.ports))

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:
        # Once: tenants and policies key the compiler's caches, hashed on every lookup.
        return hash((self.name, tuple(self.networks.items()), self.rules, self.ports))


@dataclass(frozen=True)
class Policy:
    """All tenants, plus the files they were read from."""

    tenants: Mapping[str, Tenant]
    sources: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenants", _frozen_sorted(self.tenants))
        object.__setattr__(self, "sources", tuple(self.sources))

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:
        # Once: a policy keys the compiler's caches, and hashing 1,000 tenants takes ~1 ms.
        return hash(tuple(self.tenants.items()))

    def networks(self) -> Iterator[Network]:
        """Every network, ordered by tenant name then network name."""
        for tenant in self.tenants.values():
            yield from tenant.networks.values()

    def network(self, key: str) -> Network | None:
        """The network called "tenant/name", if any."""
        tenant_name, _, name = key.partition("/")
        tenant = self.tenants.get(tenant_name)
        return tenant.networks.get(name) if tenant else None

    def by_vni(self, vni: int) -> Network | None:
        return self._by_vni.get(vni)

    @cached_property
    def _by_vni(self) -> Mapping[int, Network]:
        return MappingProxyType({net.vni: net for net in self.networks()})

    def map_port(self, iface_id: str, vm_id: str) -> Network | str | None:
        """The network a port without `dove-network` is bound to by the tenants' port
        mappings: None when none matches, a reason when the mappings disagree. A mapping
        of the exact value wins over patterns."""
        found = []
        for key, value in (("iface-id", iface_id), ("vm-id", vm_id)):
            if value:
                found += self._exact.get((key, value), [])
        if not found:
            found = [m for m in self._patterns
                     if (value := iface_id if m.key == "iface-id" else vm_id)
                     and fnmatchcase(value, m.pattern)]
        targets = {(m.tenant, m.network) for m in found}
        if not targets:
            return None
        if len(targets) > 1:  # named, a few at most: the reason is shown and logged
            more = f"; and {len(found) - 4} more" if len(found) > 4 else ""
            return "port mappings disagree: " + "; ".join(m.describe() for m in found[:4]) + more
        tenant, name = targets.pop()
        return self.tenants[tenant].networks.get(name) or \
            f"port mapping to unknown network {tenant}/{name}"

    @cached_property
    def _exact(self) -> Mapping[tuple[str, str], list[PortMapping]]:
        index: dict[tuple[str, str], list[PortMapping]] = {}
        for tenant in self.tenants.values():
            for m in tenant.ports:
                if m.exact:
                    index.setdefault((m.key, m.pattern), []).append(m)
        return MappingProxyType(index)

    @cached_property
    def _patterns(self) -> tuple[PortMapping, ...]:
        return tuple(m for t in self.tenants.values() for m in t.ports if not m.exact)

    def rules_between(self, src: Network, dst: Network) -> tuple[Rule, ...]:
        """Rules from ``src`` to ``dst`` (empty across tenants)."""
        tenant = self.tenants.get(src.tenant)
        if tenant is None or src.tenant != dst.tenant:
            return ()
        return tuple(r for r in tenant.rules if r.src == src.name and r.dst == dst.name)

    def allows(self, src: Network, dst: Network, proto: str, port: int | None) -> bool:
        """May traffic go from ``src`` to ``dst``? Same network: always; other tenant: never."""
        if src.key == dst.key:
            return True
        return any(rule.matches(proto, port) for rule in self.rules_between(src, dst))


def _frozen_sorted(items: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(dict(sorted(items.items(), key=lambda kv: kv[0])))
