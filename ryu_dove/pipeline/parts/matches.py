"""Small pure helpers of the routing and rule flows: port ranges as masked matches, the
tenants' conntrack zones, and a rule's mark."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from functools import lru_cache

from ryu_dove.policy import Policy, Rule

PORT_BITS = 16
ZONES = 0xFFFF  # conntrack zones 1..65535 (0 is the default zone, used by nothing of ours)

PortMatch = int | tuple[int, int]  # a port, or (value, mask)


def port_matches(low: int, high: int) -> Iterator[PortMatch]:
    """The fewest (value, mask) matches that cover exactly low..high (inclusive): aligned
    power-of-two blocks, the largest that fit at each step. 1024-65535 is 6 matches, 5432 one;
    a single port is the port itself. The whole range yields nothing: match no port."""
    if not 0 <= low <= high <= 0xFFFF:
        raise ValueError(f"not a port range: {low}-{high}")
    if (low, high) == (0, 0xFFFF):
        return
    while low <= high:
        size = low & -low if low else 1 << PORT_BITS  # the largest block aligned at low
        while size > high - low + 1:
            size >>= 1
        yield low if size == 1 else (low, 0xFFFF ^ (size - 1))
        low += size


@lru_cache(maxsize=64)
def tenant_zones(policy: Policy) -> Mapping[str, int]:
    """Each tenant's conntrack zone: from a hash of its name, so that adding or removing
    another tenant leaves it alone; on the rare collision the tenant later in name order
    takes the next free zone (its connections then restart once)."""
    zones: dict[str, int] = {}
    taken: set[int] = set()
    for name in sorted(policy.tenants):
        zone = _hash16(name)
        while zone in taken:
            zone = zone % ZONES + 1
        zones[name] = zone
        taken.add(zone)
    return zones


def rule_mark(rule: Rule) -> int:
    """A rule's identity as a 32-bit ct_mark: a connection committed under it carries it,
    and passes only while a flow for that mark exists (so removing the rule ends it)."""
    ports = "" if rule.ports is None else f"{rule.ports[0]}-{rule.ports[1]}"
    text = f"{rule.tenant}\0{rule.src}\0{rule.dst}\0{rule.proto}\0{ports}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") or 1


def _hash16(name: str) -> int:
    digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=2).digest(), "big")
    return digest % ZONES + 1
