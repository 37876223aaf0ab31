"""A tenant's rules as written; their network names are resolved by crosscheck."""

from __future__ import annotations

from typing import Any

from ryu_dove.policy.model import PORT_PROTOS, PROTOS, Proto
from ryu_dove.policy.values import describe, parse_ports
from ryu_dove.policy.walk import FileWalk, RawRule, RawTenant
from ryu_dove.policy.yamlmarks import did_you_mean, mark, value_mark

RULE_KEYS = ("allow",)
ALLOW_KEYS = ("from", "to", "proto", "port")


def parse_rule(f: FileWalk, seq: list[Any], index: int, tenant: RawTenant) -> None:
    """Add rule ``seq[index]`` to ``tenant.rules`` unless it is not even a rule."""
    item, pos = seq[index], mark(seq, index)
    if not isinstance(item, dict):
        f.report(pos, "a rule must be a mapping like '- allow: {from: web, to: db}', "
                      f"got {describe(item)}")
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
    proto = _proto(f, body)
    tenant.rules.append(RawRule(
        src=f.get(body, "from", str, "a network name"),
        dst=f.get(body, "to", str, "a network name"),
        proto=proto or "any",
        ports=_ports(f, body, proto),
        where=f.where(pos),
        src_at=f.where(value_mark(body, "from")),
        dst_at=f.where(value_mark(body, "to")),
    ))


def _proto(f: FileWalk, body: dict[Any, Any]) -> Proto | None:
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


def _ports(f: FileWalk, body: dict[Any, Any], proto: Proto | None) -> tuple[int, int] | None:
    if "port" not in body:
        return None
    ports, error = parse_ports(body["port"])
    if error:
        f.report(value_mark(body, "port"), error)
    if proto is not None and proto not in PORT_PROTOS:
        why = f"proto is '{proto}'" if "proto" in body else "proto defaults to 'any'"
        f.report(mark(body, "port"), f"port is only valid with proto tcp or udp ({why})")
    return ports
