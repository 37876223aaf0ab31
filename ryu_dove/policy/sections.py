"""The top of a policy file and its tenants; networks and rules have modules of their own."""

from __future__ import annotations

from typing import Any

from ryu_dove.policy.networks import parse_network
from ryu_dove.policy.port_mappings import parse_port_mapping
from ryu_dove.policy.rules import parse_rule
from ryu_dove.policy.values import describe, name_error
from ryu_dove.policy.walk import Collected, FileWalk, RawTenant
from ryu_dove.policy.yamlmarks import load_yaml, mark, value_mark

# The keys allowed at each level; policies/schema.json must agree (tested).
TOP_KEYS = ("tenants",)
TENANT_KEYS = ("networks", "policy", "ports")


def read_file(seen: Collected, path: str) -> None:
    """Walk one policy file completely, adding its tenants and problems to ``seen``."""
    data, problems = load_yaml(path)
    seen.problems.extend(problems)
    seen.sources.append(path)
    f = seen.file(path)
    if data is None:
        if not problems:
            f.report((1, 1), "empty file: expected a mapping with key 'tenants'")
        return
    if not isinstance(data, dict):
        f.report(mark(data), f"expected a mapping with key 'tenants', got {describe(data)}")
        return
    f.check_keys(data, TOP_KEYS)
    f.require(data, ("tenants",), "the policy", mark(data))
    tenants = f.get(data, "tenants", dict, "a mapping of tenant names to tenants")
    for name in tenants or {}:
        _tenant(seen, f, tenants, name)


def _tenant(seen: Collected, f: FileWalk, tenants: dict[Any, Any], name: Any) -> None:
    pos = mark(tenants, name)
    if error := name_error(name, "tenant"):
        f.report(pos, error)
    tenant = RawTenant(str(name), f.where(pos))
    first = seen.tenants.setdefault(tenant.name, tenant)
    if first is not tenant:
        f.report(pos, f"tenant '{name}' is already defined at {first.where}; "
                      "define each tenant in one place")
    seen.parsed.append(tenant)
    node = tenants[name]
    if not isinstance(node, dict):
        f.report(value_mark(tenants, name), f"tenant '{name}' must be a mapping with "
                                            f"'networks' and 'policy', got {describe(node)}")
        return
    f.check_keys(node, TENANT_KEYS)
    networks = f.get(node, "networks", dict) or {}
    # A repeated tenant is reported once, not again per VNI.
    vnis = seen.vnis if first is tenant else None
    for net_name in networks:
        parse_network(f, networks, net_name, tenant, vnis)
    rules = f.get(node, "policy", list, "a list of rules like '- allow: {from: a, to: b}'")
    for index in range(len(rules or ())):
        parse_rule(f, rules, index, tenant)
    ports = f.get(node, "ports", list,
                  "a list of port mappings like '- {iface-id: \"web-*\", network: web}'")
    for index in range(len(ports or ())):
        mapping = parse_port_mapping(f, ports, index, tenant, seen.exact_ports)
        if mapping is not None:
            tenant.ports.append(mapping)
