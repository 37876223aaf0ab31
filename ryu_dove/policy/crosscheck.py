"""Checks across files: each rule's networks, once every file has been read.

A rule may name a network of its tenant defined in another file; one naming another
tenant's network, its own network twice, or networks of two IP families is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from ryu_dove.policy.model import Rule, Where
from ryu_dove.policy.walk import Collected, RawRule, RawTenant
from ryu_dove.policy.yamlmarks import Problem, did_you_mean

Owners = dict[str, list[str]]  # network name -> the tenants that declare one of that name


def resolve_rules(seen: Collected) -> dict[int, tuple[Rule, ...]]:
    """The valid rules of every tenant definition, by id() of its RawTenant.

    Repeated definitions are checked too (their problems are reported), though only the
    first definition of a tenant makes it into the policy.
    """
    owners = _owners(seen.tenants.values())
    resolved: dict[int, tuple[Rule, ...]] = {}
    for tenant in seen.parsed:
        rules = [_resolve(seen.problems, tenant, raw, owners) for raw in tenant.rules]
        resolved[id(tenant)] = tuple(rule for rule in rules if rule)
    return resolved


def _owners(tenants: Iterable[RawTenant]) -> Owners:
    owners: Owners = {}
    for tenant in tenants:
        for name in tenant.declared:
            owners.setdefault(name, []).append(tenant.name)
    return owners


def _report(problems: list[Problem], where: Where, message: str) -> None:
    problems.append(Problem(where.file, where.line, where.col, message))


def _resolve(problems: list[Problem], tenant: RawTenant, raw: RawRule, owners: Owners
             ) -> Rule | None:
    known = [_known(problems, tenant, raw.src, raw.src_at, owners),
             _known(problems, tenant, raw.dst, raw.dst_at, owners)]
    if not all(known) or raw.src is None or raw.dst is None:
        return None
    if raw.src == raw.dst:
        _report(problems, raw.dst_at, f"rule from '{raw.src}' to itself is pointless: "
                                      "traffic within a network is always allowed")
        return None
    src, dst = tenant.networks.get(raw.src), tenant.networks.get(raw.dst)
    if src and dst and src.subnet.version != dst.subnet.version:
        _report(problems, raw.where, f"rule from '{src.name}' (IPv{src.subnet.version}) to "
                                     f"'{dst.name}' (IPv{dst.subnet.version}) can never "
                                     "match: no packet goes between IP families")
        return None
    return Rule(tenant.name, raw.src, raw.dst, raw.proto, raw.ports, raw.where)


def _known(problems: list[Problem], tenant: RawTenant, name: str | None, at: Where,
           owners: Owners) -> bool:
    if name is None:  # missing or wrong type: already reported
        return False
    if name in tenant.declared:
        return True
    others = [t for t in owners.get(name, []) if t != tenant.name]
    if others:
        owner = "tenant " if len(others) == 1 else "tenants "
        owner += ", ".join(f"'{t}'" for t in others)
        _report(problems, at, f"network '{name}' belongs to {owner}; "
                              "rules only connect networks of one tenant")
    else:
        hint = did_you_mean(name, tenant.declared) or (
            f" (tenant '{tenant.name}' has: {', '.join(sorted(tenant.declared)) or 'none'})")
        _report(problems, at, f"unknown network '{name}' in tenant '{tenant.name}'{hint}")
    return False
