"""Checks of single policy values (names, subnets, gateways, ports), free of YAML positions.

Each returns the parsed value or an error message; the section parsers put the message at
the value's place in the file.
"""

from __future__ import annotations

import re
from ipaddress import ip_network

from ryu_dove.policy.model import NAME_PATTERN, PORT_MAX, PORT_MIN, IPAddress, IPNetwork

_NAME = re.compile(NAME_PATTERN)
_CIDR = re.compile(r"[0-9A-Fa-f:.]+/[0-9]{1,3}")  # refuses netmask and bare-address forms
_PORT_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
KINDS = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}


def is_kind(value: object, kind: type) -> bool:
    if kind is int and isinstance(value, bool):  # YAML true/false are ints to Python
        return False
    return isinstance(value, kind)


def describe(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string '{value}'"
    if isinstance(value, int | float):
        return f"number {value}"
    for kind, name in KINDS.items():
        if isinstance(value, kind):
            return name
    tag = getattr(value, "tag", None)  # e.g. ruamel's TaggedScalar for '!foo 1'
    return f"a value tagged '{tag}'" if tag is not None else type(value).__name__


def name_error(name: object, kind: str) -> str | None:
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return (
        f"invalid {kind} name '{name}': use 1-32 characters a-z, 0-9, '_' or '-', "
        "starting with a letter"
    )


def parse_subnet(text: str) -> tuple[IPNetwork | None, str | None]:
    if not _CIDR.fullmatch(text):
        return None, f"subnet '{text}' is not a CIDR like 198.51.100.0/26 or 2001:db8::/64"
    try:
        subnet = ip_network(text)
    except ValueError:
        try:
            loose = ip_network(text, strict=False)
        except ValueError:
            return None, f"subnet '{text}' is not a valid IPv4 or IPv6 CIDR"
        return None, f"subnet '{text}' has host bits set, did you mean {loose}?"
    # IPv4 loses network and broadcast addresses, IPv6 the subnet-router anycast.
    reserved, largest = (2, 30) if subnet.version == 4 else (1, 126)
    if subnet.num_addresses - reserved < 2:
        return None, (
            f"subnet {subnet} is too small: it needs room for the gateway and at least "
            f"one host (use /{largest} or shorter)"
        )
    return subnet, None


def gateway_error(gateway: IPAddress, subnet: IPNetwork) -> str | None:
    if gateway.version != subnet.version:
        return (f"gateway {gateway} is IPv{gateway.version} "
                f"but subnet {subnet} is IPv{subnet.version}")
    if gateway not in subnet:
        return f"gateway {gateway} is outside subnet {subnet}"
    if gateway == subnet.network_address:
        return f"gateway {gateway} is the network address of {subnet}"
    if subnet.version == 4 and gateway == subnet.broadcast_address:
        return f"gateway {gateway} is the broadcast address of {subnet}"
    return None


def parse_ports(value: object) -> tuple[tuple[int, int] | None, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        port = int(value)
        if PORT_MIN <= port <= PORT_MAX:
            return (port, port), None
        return None, f"port {port} is out of range {PORT_MIN}..{PORT_MAX}"
    if not isinstance(value, str):
        return None, f"port must be a number or a range like '8000-8080', got {describe(value)}"
    match = _PORT_RANGE.fullmatch(value)
    if not match:
        return None, f"port '{value}' is neither a number nor a range like '8000-8080'"
    low, high = int(match[1]), int(match[2])
    for port in (low, high):
        if not PORT_MIN <= port <= PORT_MAX:
            return None, f"port range '{value}': {port} is out of range {PORT_MIN}..{PORT_MAX}"
    if low > high:
        return None, f"port range '{value}' is reversed: {low} > {high} (write '{high}-{low}')"
    return (low, high), None
