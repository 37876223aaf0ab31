"""Parse policy YAML files into a frozen Policy, collecting every problem.

Nothing here stops at the first error: each file is walked completely, the
cross-file checks (duplicate tenants and VNIs, rule targets) run over all of
them, and only then is ConfigError raised with the whole list.

The work is split by concern: `sources` (which files), `sections`, `networks`, `rules`
and `port_mappings` (the walk of one file), `values` (single values), `crosscheck` (rules
across files). The keys allowed at each level are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ryu_dove.policy.crosscheck import resolve_rules
from ryu_dove.policy.model import Policy, Tenant
from ryu_dove.policy.networks import NETWORK_KEYS
from ryu_dove.policy.port_mappings import PORT_MAPPING_KEYS
from ryu_dove.policy.rules import ALLOW_KEYS, RULE_KEYS
from ryu_dove.policy.sections import TENANT_KEYS, TOP_KEYS, read_file
from ryu_dove.policy.sources import POLICY_SUFFIXES, expand
from ryu_dove.policy.walk import Collected
from ryu_dove.policy.yamlmarks import ConfigError, Problem

__all__ = [
    "ALLOW_KEYS",
    "NETWORK_KEYS",
    "POLICY_SUFFIXES",
    "PORT_MAPPING_KEYS",
    "RULE_KEYS",
    "TENANT_KEYS",
    "TOP_KEYS",
    "check_policy",
    "load_policy",
]


def load_policy(paths: Sequence[str]) -> Policy:
    """Load policy files and directories (their *.yaml/*.yml, sorted) as one policy.

    Raises ConfigError listing every problem found, each with file:line:col.
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ValueError("load_policy needs at least one path")
    seen = Collected()
    for path in expand(paths, seen.problems):
        read_file(seen, path)
    rules = resolve_rules(seen)
    if seen.problems:
        raise ConfigError(seen.problems)
    tenants = {t.name: Tenant(t.name, t.networks, rules[id(t)], t.where, tuple(t.ports))
               for t in seen.tenants.values()}
    return Policy(tenants, tuple(seen.sources))


def check_policy(paths: Sequence[str]) -> list[Problem]:
    """Every problem in the policy at ``paths``, sorted; empty when it is valid."""
    try:
        load_policy(paths)
    except ConfigError as exc:
        return list(exc.problems)
    return []
