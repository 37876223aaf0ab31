"""Cutting a hypervisor off the controller, whole or one channel at a time, and healing it.

`all` takes the hypervisor's management link down on the root side: both channels go at
once, as when a cable or a top-of-rack switch fails. `openflow` and `ovsdb` drop one
channel's TCP in both directions with nftables inside the hypervisor's namespace, so
nothing, not even a RST or a FIN, tells either end: the connection goes silent, as in a
real partition, and only probes and timeouts can notice.

The lab's state records what is cut; the nftables table is rendered from that record as a
whole (pure functions below) and replaced in one nft transaction, so healing one channel
never opens the other even for an instant.
"""

from __future__ import annotations

from dove_lab import shell
from dove_lab.controller_watch import OFP_PORT
from ovsdb_agent import contract

ALL = "all"
CHANNEL_PORTS = {"openflow": OFP_PORT, "ovsdb": contract.OVSDB_PORT}
CHOICES = (ALL, *CHANNEL_PORTS)  # in the order status lists them
TABLE = "dove_lab"  # family inet: IPv4 and IPv6 alike


def ordered(channels: set[str]) -> list[str]:
    """Cuts are independent (`all` and a channel can both be cut; healing one leaves the
    other): kept as a set, listed in one order."""
    return [c for c in CHOICES if c in channels]


def nft_rules(channels: list[str], controller_ip: str) -> list[tuple[str, str]]:
    """The (chain, rule) pairs that drop the given channels' TCP to and from the controller."""
    family = "ip6" if ":" in controller_ip else "ip"
    rules = []
    for channel in channels:
        port = CHANNEL_PORTS.get(channel)
        if port is None:
            continue  # `all` is the link, not a rule
        tag = f'comment "dove-lab {channel}"'
        rules.append(("input", f"{family} saddr {controller_ip} tcp sport {port} drop {tag}"))
        rules.append(("output", f"{family} daddr {controller_ip} tcp dport {port} drop {tag}"))
    return rules


def nft_script(channels: list[str], controller_ip: str) -> str:
    """An `nft -f` script that makes table inet dove_lab hold exactly the rules of these
    channels (no table when there are none), whatever it held before, in one transaction.
    `add table` first so that flush and delete also work when there is no table yet."""
    rules = nft_rules(channels, controller_ip)
    lines = [f"add table inet {TABLE}"]
    if not rules:
        return "\n".join([*lines, f"delete table inet {TABLE}", ""])
    lines.append(f"flush table inet {TABLE}")
    lines.append(f"table inet {TABLE} {{")
    for chain in ("input", "output"):
        lines += [f"\tchain {chain} {{",
                  f"\t\ttype filter hook {chain} priority filter; policy accept;",
                  *(f"\t\t{rule}" for c, rule in rules if c == chain),
                  "\t}"]
    return "\n".join([*lines, "}", ""])


def apply(netns: str, mgmt_veth: str, channels: list[str], controller_ip: str) -> None:
    """Make the host match the cut channels: the root-side management veth down iff `all`
    is cut, and the namespace's nftables table holding exactly the others' rules."""
    shell.run(["ip", "link", "set", mgmt_veth, "down" if ALL in channels else "up"])
    shell.run(["nft", "-f", "-"], netns=netns, input=nft_script(channels, controller_ip))


def describe(hv: str, action: str, asked: str, changed: list[str],
             partitioned: list[str]) -> str:
    """What `dove-lab partition|heal` says (action is one of those): what it did, or why it
    did nothing."""
    now = ", ".join(partitioned) or "nothing"
    if changed:
        done = "cut" if action == "partition" else "healed"
        return f"{hv}: {done} {', '.join(changed)} (cut now: {now})"
    if action == "partition":
        return f"{hv}: {asked} is cut already; nothing to do (cut now: {now})"
    return f"{hv}: {asked} is not cut; nothing to heal (cut now: {now})"
