"""A tenant's port mappings as written: which VM ports without `dove-network` (plugged by
unmodified libvirt or os-vif, whose Interface carries only iface-id, attached-mac,
iface-status and vm-id) belong to which of its networks. docs/policy.md, "Ports"."""

from __future__ import annotations

from typing import Any

from ryu_dove.policy.model import PORT_KEYS, PortMapping, Where
from ryu_dove.policy.values import describe
from ryu_dove.policy.walk import FileWalk, RawTenant
from ryu_dove.policy.yamlmarks import did_you_mean, mark, value_mark

PORT_MAPPING_KEYS = ("iface-id", "vm-id", "network")
MAX_PATTERN = 255  # OVS external_ids values are free text; ids longer than this are mistakes


def parse_port_mapping(f: FileWalk, seq: list[Any], index: int, tenant: RawTenant,
                       exact_seen: dict[tuple[str, str], Where]) -> PortMapping | None:
    """Mapping ``seq[index]`` of ``tenant``, or None (reported) when it is not one.
    ``exact_seen`` holds every exact (key, value) mapped so far, across tenants and files."""
    item, pos = seq[index], mark(seq, index)
    if not isinstance(item, dict):
        f.report(pos, "a port mapping must be a mapping like "
                      f"'- {{iface-id: \"web-*\", network: web}}', got {describe(item)}")
        return None
    f.check_keys(item, PORT_MAPPING_KEYS)
    keys = [k for k in PORT_KEYS if k in item]
    if len(keys) != 1:
        f.report(pos, "a port mapping names exactly one of 'iface-id' and 'vm-id'"
                      + (", not both" if keys else ""))
        return None
    key = keys[0]
    f.require(item, ("network",), "port mapping", pos)
    pattern = f.get(item, key, str, "an id, or a pattern with * ? [...]")
    network = f.get(item, "network", str, "a network name of this tenant")
    if pattern is not None and not 0 < len(pattern) <= MAX_PATTERN:
        f.report(value_mark(item, key), f"'{key}' must be 1-{MAX_PATTERN} characters")
        pattern = None
    if network is not None and network not in tenant.declared:
        hint = did_you_mean(network, tenant.declared) or (
            f" (tenant '{tenant.name}' has: {', '.join(sorted(tenant.declared)) or 'none'})")
        f.report(value_mark(item, "network"),
                 f"unknown network '{network}' in tenant '{tenant.name}'{hint}")
        network = None
    if pattern is None or network is None:
        return None
    mapping = PortMapping(tenant.name, network, key, pattern, f.where(value_mark(item, key)))
    if mapping.exact:
        first = exact_seen.setdefault((key, pattern), mapping.where)
        if first is not mapping.where:
            f.report(value_mark(item, key), f"{key} '{pattern}' is already mapped at {first}; "
                                            "an id belongs to one network")
            return None
    return mapping
