"""Parse policy YAML files into a frozen Policy, collecting every problem.

Nothing here stops at the first error: each file is walked completely, the
cross-file checks (duplicate tenants and VNIs, rule targets) run over all of
them, and only then is ConfigError raised with the whole list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any

from ryu_dove.policy.model import (
    NAME_PATTERN,
    PORT_MAX,
    PORT_MIN,
    PORT_PROTOS,
    PROTOS,
    VNI_MAX,
    VNI_MIN,
    IPAddress,
    IPNetwork,
    Network,
    Policy,
    Proto,
    Rule,
    Tenant,
    Where,
)
from ryu_dove.policy.yamlmarks import (
    ConfigError,
    Problem,
    did_you_mean,
    load_yaml,
    mark,
    unknown_key_problem,
    value_mark,
)

# The keys allowed at each level; policies/schema.json must agree (tested).
TOP_KEYS = ("tenants",)
TENANT_KEYS = ("networks", "policy")
NETWORK_KEYS = ("vni", "subnet", "gateway")
RULE_KEYS = ("allow",)
ALLOW_KEYS = ("from", "to", "proto", "port")

POLICY_SUFFIXES = (".yaml", ".yml")

_NAME = re.compile(NAME_PATTERN)
_CIDR = re.compile(r"[0-9A-Fa-f:.]+/[0-9]{1,3}")  # refuses netmask and bare-address forms
_PORT_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_KINDS = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}


def load_policy(paths: Sequence[str]) -> Policy:
    """Load policy files and directories (their *.yaml/*.yml, sorted) as one policy.

    Raises ConfigError listing every problem found, each with file:line:col.
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ValueError("load_policy needs at least one path")
    loader = _Loader()
    for path in loader.expand(paths):
        loader.load_file(path)
    return loader.finish()


def check_policy(paths: Sequence[str]) -> list[Problem]:
    """Every problem in the policy at ``paths``, sorted; empty when it is valid."""
    try:
        load_policy(paths)
    except ConfigError as exc:
        return list(exc.problems)
    return []


# --- values -------------------------------------------------------------------


def _is_kind(value: object, kind: type) -> bool:
    if kind is int and isinstance(value, bool):  # YAML true/false are ints to Python
        return False
    return isinstance(value, kind)


def _describe(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string '{value}'"
    if isinstance(value, int | float):
        return f"number {value}"
    for kind, name in _KINDS.items():
        if isinstance(value, kind):
            return name
    tag = getattr(value, "tag", None)  # e.g. ruamel's TaggedScalar for '!foo 1'
    return f"a value tagged '{tag}'" if tag is not None else type(value).__name__


def _name_error(name: object, kind: str) -> str | None:
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return (
        f"invalid {kind} name '{name}': use 1-32 characters a-z, 0-9, '_' or '-', "
        "starting with a letter"
    )


def _parse_subnet(text: str) -> tuple[IPNetwork | None, str | None]:
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


def _gateway_error(gateway: IPAddress, subnet: IPNetwork) -> str | None:
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


def _parse_ports(value: object) -> tuple[tuple[int, int] | None, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        port = int(value)
        if PORT_MIN <= port <= PORT_MAX:
            return (port, port), None
        return None, f"port {port} is out of range {PORT_MIN}..{PORT_MAX}"
    if not isinstance(value, str):
        return None, f"port must be a number or a range like '8000-8080', got {_describe(value)}"
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


# --- the walk -------------------------------------------------------------------


@dataclass
class _File:
    """One file being walked; reports into the loader's shared problem list."""

    path: str
    problems: list[Problem]

    def where(self, pos: tuple[int, int]) -> Where:
        return Where(self.path, *pos)

    def report(self, pos: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(self.path, pos[0], pos[1], message))

    def check_keys(self, node: dict[Any, Any], allowed: Sequence[str]) -> None:
        for key in node:
            if key not in allowed:
                self.problems.append(unknown_key_problem(self.path, node, key, allowed))

    def require(self, node: dict[Any, Any], keys: Sequence[str], owner: str,
                pos: tuple[int, int]) -> None:
        for key in keys:
            if key not in node:
                self.report(pos, f"{owner} is missing required key '{key}'")

    def get(self, node: dict[Any, Any], key: str, kind: type, what: str = "") -> Any:
        """node[key] when present and of ``kind``; otherwise None (reported if present)."""
        if key not in node:
            return None
        value = node[key]
        if _is_kind(value, kind):
            return value
        expected = what or _KINDS[kind]
        self.report(value_mark(node, key), f"'{key}' must be {expected}, got {_describe(value)}")
        return None


@dataclass
class _RawRule:
    """A rule before its network names are resolved (that needs every file read)."""

    src: str | None
    dst: str | None
    proto: Proto
    ports: tuple[int, int] | None
    where: Where
    src_at: Where
    dst_at: Where


@dataclass
class _RawTenant:
    name: str
    where: Where
    networks: dict[str, Network] = field(default_factory=dict)
    # Every network name written, valid or not, so rules naming a broken
    # network do not add an "unknown network" error on top of the real one.
    declared: set[str] = field(default_factory=set)
    subnets: list[tuple[str, IPNetwork, Where]] = field(default_factory=list)
    rules: list[_RawRule] = field(default_factory=list)


class _Loader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.sources: list[str] = []
        self.tenants: dict[str, _RawTenant] = {}  # first definition of each name
        self.parsed: list[_RawTenant] = []  # every definition, including repeats
        self.vnis: dict[int, Network] = {}

    def expand(self, paths: Sequence[str]) -> list[str]:
        """Files to read, in order: directories give their policy files, sorted."""
        files: list[str] = []
        for path in paths:
            files.extend(self._dir_files(path) if os.path.isdir(path) else [path])
        seen: set[str] = set()
        unique = []
        for path in files:  # the same file twice (dir and file) is read once
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                unique.append(path)
        return unique

    def _dir_files(self, path: str) -> list[str]:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.problems.append(Problem(path, 1, 1, f"cannot read: {exc.strerror}"))
            return []
        files = [
            os.path.join(path, name) for name in names
            if name.endswith(POLICY_SUFFIXES) and not name.startswith(".")
            and not os.path.isdir(os.path.join(path, name))
        ]
        if not files:
            self.problems.append(Problem(path, 1, 1, "no *.yaml or *.yml files in directory"))
        return files

    def load_file(self, path: str) -> None:
        data, problems = load_yaml(path)
        self.problems.extend(problems)
        self.sources.append(path)
        f = _File(path, self.problems)
        if data is None:
            if not problems:
                f.report((1, 1), "empty file: expected a mapping with key 'tenants'")
            return
        if not isinstance(data, dict):
            f.report(mark(data), f"expected a mapping with key 'tenants', got {_describe(data)}")
            return
        f.check_keys(data, TOP_KEYS)
        f.require(data, ("tenants",), "the policy", mark(data))
        tenants = f.get(data, "tenants", dict, "a mapping of tenant names to tenants")
        for name in tenants or {}:
            self._tenant(f, tenants, name)

    def _tenant(self, f: _File, tenants: dict[Any, Any], name: Any) -> None:
        pos = mark(tenants, name)
        if error := _name_error(name, "tenant"):
            f.report(pos, error)
        tenant = _RawTenant(str(name), f.where(pos))
        first = self.tenants.setdefault(tenant.name, tenant)
        if first is not tenant:
            f.report(pos, f"tenant '{name}' is already defined at {first.where}; "
                          "define each tenant in one place")
        self.parsed.append(tenant)
        node = tenants[name]
        if not isinstance(node, dict):
            f.report(value_mark(tenants, name), f"tenant '{name}' must be a mapping with "
                                                f"'networks' and 'policy', got {_describe(node)}")
            return
        f.check_keys(node, TENANT_KEYS)
        networks = f.get(node, "networks", dict) or {}
        for net_name in networks:
            self._network(f, networks, net_name, tenant, register=first is tenant)
        rules = f.get(node, "policy", list, "a list of rules like '- allow: {from: a, to: b}'")
        for index in range(len(rules or ())):
            self._rule(f, rules, index, tenant)

    # --- networks

    def _network(self, f: _File, nets: dict[Any, Any], name: Any, tenant: _RawTenant,
                 register: bool) -> None:
        pos, owner = mark(nets, name), f"network '{tenant.name}/{name}'"
        tenant.declared.add(str(name))
        if error := _name_error(name, "network"):
            f.report(pos, error)
        node = nets[name]
        if not isinstance(node, dict):
            f.report(value_mark(nets, name),
                     f"{owner} must be a mapping with 'vni' and 'subnet', got {_describe(node)}")
            return
        f.check_keys(node, NETWORK_KEYS)
        f.require(node, ("vni", "subnet"), owner, pos)
        vni = self._vni(f, node)
        subnet = self._subnet(f, node, tenant, str(name))
        gateway = self._gateway(f, node, subnet)
        if vni is None or subnet is None or gateway is None:
            return
        network = Network(tenant.name, str(name), vni, subnet, gateway, f.where(pos))
        tenant.networks[network.name] = network
        if register:  # a repeated tenant is reported once, not again per VNI
            self._register_vni(f, node, network)

    def _vni(self, f: _File, node: dict[Any, Any]) -> int | None:
        vni = f.get(node, "vni", int)
        if vni is None:
            return None
        if not VNI_MIN <= vni <= VNI_MAX:
            f.report(value_mark(node, "vni"),
                     f"vni {vni} is out of range {VNI_MIN}..{VNI_MAX} (24 bits)")
            return None
        return int(vni)

    def _register_vni(self, f: _File, node: dict[Any, Any], network: Network) -> None:
        first = self.vnis.setdefault(network.vni, network)
        if first is not network:
            f.report(value_mark(node, "vni"), f"vni {network.vni} is already used by "
                                              f"{first.key} at {first.where}")

    def _subnet(self, f: _File, node: dict[Any, Any], tenant: _RawTenant, name: str
                ) -> IPNetwork | None:
        text = f.get(node, "subnet", str, "a CIDR string like 198.51.100.0/26")
        if text is None:
            return None
        pos = value_mark(node, "subnet")
        subnet, error = _parse_subnet(text)
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

    def _gateway(self, f: _File, node: dict[Any, Any], subnet: IPNetwork | None
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
        if error := _gateway_error(gateway, subnet):
            f.report(pos, error)
            return None
        return gateway

    # --- rules

    def _rule(self, f: _File, seq: list[Any], index: int, tenant: _RawTenant) -> None:
        item, pos = seq[index], mark(seq, index)
        if not isinstance(item, dict):
            f.report(pos, "a rule must be a mapping like '- allow: {from: web, to: db}', "
                          f"got {_describe(item)}")
            return
        f.check_keys(item, RULE_KEYS)
        if "allow" not in item:
            f.report(pos, "a rule needs the key 'allow' (rules only allow; the default is deny)")
            return
        body = f.get(item, "allow", dict, "a mapping with 'from' and 'to'")
        if body is None:
            return
        f.check_keys(body, ALLOW_KEYS)
        f.require(body, ("from", "to"), "rule", mark(item, "allow"))
        proto = self._proto(f, body)
        tenant.rules.append(_RawRule(
            src=f.get(body, "from", str, "a network name"),
            dst=f.get(body, "to", str, "a network name"),
            proto=proto or "any",
            ports=self._ports(f, body, proto),
            where=f.where(pos),
            src_at=f.where(value_mark(body, "from")),
            dst_at=f.where(value_mark(body, "to")),
        ))

    def _proto(self, f: _File, body: dict[Any, Any]) -> Proto | None:
        if "proto" not in body:
            return "any"
        proto = f.get(body, "proto", str, f"one of {', '.join(PROTOS)}")
        if proto is None:
            return None
        for known in PROTOS:
            if proto == known:
                return known
        f.report(value_mark(body, "proto"), f"proto '{proto}' is not one of "
                                            f"{', '.join(PROTOS)}{did_you_mean(proto, PROTOS)}")
        return None

    def _ports(self, f: _File, body: dict[Any, Any], proto: Proto | None
               ) -> tuple[int, int] | None:
        if "port" not in body:
            return None
        ports, error = _parse_ports(body["port"])
        if error:
            f.report(value_mark(body, "port"), error)
        if proto is not None and proto not in PORT_PROTOS:
            why = f"proto is '{proto}'" if "proto" in body else "proto defaults to 'any'"
            f.report(mark(body, "port"), f"port is only valid with proto tcp or udp ({why})")
        return ports

    # --- across files

    def finish(self) -> Policy:
        owners: dict[str, list[str]] = {}
        for tenant in self.tenants.values():
            for name in tenant.declared:
                owners.setdefault(name, []).append(tenant.name)
        rules = {id(t): [self._resolve(t, raw, owners) for raw in t.rules] for t in self.parsed}
        if self.problems:
            raise ConfigError(self.problems)
        tenants = {
            t.name: Tenant(t.name, t.networks, tuple(r for r in rules[id(t)] if r), t.where)
            for t in self.tenants.values()
        }
        return Policy(tenants, tuple(self.sources))

    def _report(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where.file, where.line, where.col, message))

    def _resolve(self, tenant: _RawTenant, raw: _RawRule, owners: dict[str, list[str]]
                 ) -> Rule | None:
        known = [self._known(tenant, raw.src, raw.src_at, owners),
                 self._known(tenant, raw.dst, raw.dst_at, owners)]
        if not all(known) or raw.src is None or raw.dst is None:
            return None
        if raw.src == raw.dst:
            self._report(raw.dst_at, f"rule from '{raw.src}' to itself is pointless: traffic "
                                     "within a network is always allowed")
            return None
        src, dst = tenant.networks.get(raw.src), tenant.networks.get(raw.dst)
        if src and dst and src.subnet.version != dst.subnet.version:
            self._report(raw.where, f"rule from '{src.name}' (IPv{src.subnet.version}) to "
                                    f"'{dst.name}' (IPv{dst.subnet.version}) can never match: "
                                    "no packet goes between IP families")
            return None
        return Rule(tenant.name, raw.src, raw.dst, raw.proto, raw.ports, raw.where)

    def _known(self, tenant: _RawTenant, name: str | None, at: Where,
               owners: dict[str, list[str]]) -> bool:
        if name is None:  # missing or wrong type: already reported
            return False
        if name in tenant.declared:
            return True
        others = [t for t in owners.get(name, []) if t != tenant.name]
        if others:
            owner = "tenant " if len(others) == 1 else "tenants "
            owner += ", ".join(f"'{t}'" for t in others)
            self._report(at, f"network '{name}' belongs to {owner}; "
                             "rules only connect networks of one tenant")
        else:
            hint = did_you_mean(name, tenant.declared) or (
                f" (tenant '{tenant.name}' has: {', '.join(sorted(tenant.declared)) or 'none'})")
            self._report(at, f"unknown network '{name}' in tenant '{tenant.name}'{hint}")
        return False
