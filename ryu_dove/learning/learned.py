"""The dove-learned-ips value kept in a hypervisor's OVSDB: "ip@unix-time,ip@unix-time".

The controller writes it and reads it back from every report, so learned addresses outlive
a controller restart. Read totally and forgivingly: an entry that does not parse, or that
the network does not take (a policy change moved its subnet), is skipped, not a refusal
of the port (the port is the VM's; its learned addresses are a cache the VM refills).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ryu_dove.policy import Network

MAX_VALUE = 4096  # characters read of the value: 64 addresses fit
MAX_SINCE = 2**32 - 1  # unix seconds (year 2106): a larger "when" is not a time


def parse(raw: str, net: Network, limit: int) -> list[tuple[str, int]]:
    """(address, unix time learned) of the entries the network takes, at most `limit`, the
    first of a repeated address only."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for entry in raw[:MAX_VALUE].split(","):
        ip_text, _, when = entry.strip().partition("@")
        try:
            ip, since = str(ipaddress.ip_address(ip_text)), int(when or "0")
        except ValueError:
            continue
        if ip in seen or not 0 <= since <= MAX_SINCE or net.host_problem(ip):
            continue
        seen.add(ip)
        out.append((ip, since))
        if len(out) >= limit:
            break
    return out


def render(entries: Iterable[tuple[str, int]]) -> str:
    return ",".join(f"{ip}@{since}" for ip, since in entries)
