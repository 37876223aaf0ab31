"""Tenant policy: parsed once from YAML into frozen values (see docs/policy.md)."""

from ryu_dove.policy.loader import check_policy, load_policy
from ryu_dove.policy.model import Network, Policy, Rule, Tenant, Where
from ryu_dove.policy.yamlmarks import ConfigError, Problem

__all__ = [
    "ConfigError",
    "Network",
    "Policy",
    "Problem",
    "Rule",
    "Tenant",
    "Where",
    "check_policy",
    "load_policy",
]
