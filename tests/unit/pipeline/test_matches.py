"""Port ranges as the fewest masked matches; tenants' zones; rules' marks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ryu_dove.pipeline.parts.matches import port_matches, rule_mark, tenant_zones
from ryu_dove.policy import Policy
from tests.unit.pipeline.topology import POLICY


def covered(matches) -> set[int]:
    ports: set[int] = set()
    for m in matches:
        value, mask = m if isinstance(m, tuple) else (m, 0xFFFF)
        ports |= {p for p in range(value, value + (0xFFFF ^ mask) + 1) if p & mask == value}
    return ports


def test_known_ranges_take_the_fewest_matches() -> None:
    assert list(port_matches(5432, 5432)) == [5432]
    assert list(port_matches(1024, 65535)) == [(1024, 0xFC00), (2048, 0xF800), (4096, 0xF000),
                                                (8192, 0xE000), (16384, 0xC000),
                                                (32768, 0x8000)]
    assert list(port_matches(0, 65535)) == []  # every port: no match at all
    assert list(port_matches(8000, 8001)) == [(8000, 0xFFFE)]


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_any_range_is_covered_exactly_by_aligned_blocks(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    matches = list(port_matches(low, high))
    if (low, high) == (0, 0xFFFF):
        assert matches == []
        return
    assert covered(matches) == set(range(low, high + 1))
    assert len(matches) <= 2 * 16  # the bound for prefix covers of a 16-bit range


def test_zones_are_distinct_and_stable_when_tenants_come_and_go() -> None:
    zones = tenant_zones(POLICY)
    assert len(set(zones.values())) == len(zones)
    assert all(1 <= z <= 0xFFFF for z in zones.values())
    fewer = Policy({k: v for k, v in POLICY.tenants.items() if k != "globex"})
    assert tenant_zones(fewer)["acme"] == zones["acme"]


def test_a_rule_s_mark_is_its_identity() -> None:
    rules = POLICY.tenants["acme"].rules
    marks = {rule_mark(r) for r in rules}
    assert len(marks) == len(rules) and 0 not in marks
    assert rule_mark(rules[0]) == rule_mark(rules[0])
