"""A tenant's networks: VNI, subnet and gateway, each checked where it is written."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from ryu_dove.policy.model import VNI_MAX, VNI_MIN, IPAddress, IPNetwork, Network
from ryu_dove.policy.values import describe, gateway_error, name_error, parse_subnet
from ryu_dove.policy.walk import FileWalk, RawTenant
from ryu_dove.policy.yamlmarks import mark, value_mark

NETWORK_KEYS = ("vni", "subnet", "gateway")


def parse_network(f: FileWalk, nets: dict[Any, Any], name: Any, tenant: RawTenant,
                  vnis: dict[int, Network] | None) -> None:
    """Add network ``name`` to ``tenant``; its VNI is registered in ``vnis`` unless None."""
    pos, owner = mark(nets, name), f"network '{tenant.name}/{name}'"
    tenant.declared.add(str(name))
    if error := name_error(name, "network"):
        f.report(pos, error)
    node = nets[name]
    if not isinstance(node, dict):
        f.report(value_mark(nets, name),
                 f"{owner} must be a mapping with 'vni' and 'subnet', got {describe(node)}")
        return
    f.check_keys(node, NETWORK_KEYS)
    f.require(node, ("vni", "subnet"), owner, pos)
    vni = _vni(f, node)
    subnet = _subnet(f, node, tenant, str(name))
    gateway = _gateway(f, node, subnet)
    if vni is None or subnet is None or gateway is None:
        return
    network = Network(tenant.name, str(name), vni, subnet, gateway, f.where(pos))
    tenant.networks[network.name] = network
    if vnis is not None:
        _register_vni(f, node, network, vnis)


def _vni(f: FileWalk, node: dict[Any, Any]) -> int | None:
    vni = f.get(node, "vni", int)
    if vni is None:
        return None
    if not VNI_MIN <= vni <= VNI_MAX:
        f.report(value_mark(node, "vni"),
                 f"vni {vni} is out of range {VNI_MIN}..{VNI_MAX} (24 bits)")
        return None
    return int(vni)


def _register_vni(f: FileWalk, node: dict[Any, Any], network: Network,
                  vnis: dict[int, Network]) -> None:
    first = vnis.setdefault(network.vni, network)
    if first is not network:
        f.report(value_mark(node, "vni"), f"vni {network.vni} is already used by "
                                          f"{first.key} at {first.where}")


def _subnet(f: FileWalk, node: dict[Any, Any], tenant: RawTenant, name: str
            ) -> IPNetwork | None:
    text = f.get(node, "subnet", str, "a CIDR string like 198.51.100.0/26")
    if text is None:
        return None
    pos = value_mark(node, "subnet")
    subnet, error = parse_subnet(text)
    if subnet is None:
        f.report(pos, error or "invalid subnet")
        return None
    for other, other_subnet, where in tenant.subnets:
        if other_subnet.version == subnet.version and other_subnet.overlaps(subnet):
            f.report(pos, f"subnet {subnet} overlaps network '{other}' ({other_subnet} at "
                          f"{where}); subnets of one tenant must not overlap")
            break
    tenant.subnets.append((name, subnet, f.where(pos)))
    return subnet


def _gateway(f: FileWalk, node: dict[Any, Any], subnet: IPNetwork | None
             ) -> IPAddress | None:
    """The gateway as written, or the subnet's first host when omitted."""
    if "gateway" not in node:
        return subnet.network_address + 1 if subnet is not None else None
    text = f.get(node, "gateway", str, "an IP address string")
    if text is None:
        return None
    pos = value_mark(node, "gateway")
    try:
        if "%" in text:  # ipaddress accepts IPv6 zone ids; a gateway has none
            raise ValueError(text)
        gateway = ip_address(text)
    except ValueError:
        f.report(pos, f"gateway '{text}' is not an IP address")
        return None
    if subnet is None:
        return None
    if error := gateway_error(gateway, subnet):
        f.report(pos, error)
        return None
    return gateway
