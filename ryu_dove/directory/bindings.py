"""From what a hypervisor's OVSDB says to endpoints: check every VM port binding.

A binding that cannot be honoured is refused with a reason the operator can act on; it
never disturbs other endpoints. Pure functions: the engine applies the result.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory import Directory, Endpoint
from ryu_dove.learning import learned
from ryu_dove.learning.settings import DEFAULT, LearnSettings
from ryu_dove.policy import Network, Policy

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
ZERO_MAC = "00:00:00:00:00:00"
MAX_PORT = 0xFFFFFF00  # OFPP_MAX: above are LOCAL, CONTROLLER, IN_PORT and the like
MAX_ADDRESSES = 64  # per VM port: more is a mistake or an attack on the flow tables


@dataclass(frozen=True)
class Refusal:
    hypervisor: str
    port: str
    iface_id: str
    reason: str


def is_vm_port(port: PortInfo) -> bool:
    """Bound to a network, or possibly by a policy port mapping (libvirt, os-vif)."""
    ids = port.ids()
    return contract.NETWORK in ids or contract.IFACE_ID in ids or contract.VM_ID in ids


# a port as reported -> its endpoint, its refusal, or None: not ryu_dove's (no mapping)
PortMemo = dict[PortInfo, "Endpoint | str | None"]


def resolve(policy: Policy, directory: Directory, hypervisor: str,
            ports: Iterable[PortInfo], memo: PortMemo | None = None,
            learn: LearnSettings = DEFAULT,
            active_at: Mapping[tuple[str, str], tuple[str, str]] | None = None,
            ) -> tuple[list[Endpoint], list[Refusal]]:
    """Endpoints for the VM ports of one hypervisor, and the bindings refused, with why.

    Conflicts are judged against endpoints of *other* hypervisors in the directory: the
    address or MAC bound first keeps it (a migrating VM's new port waits until the old one
    is unplugged). `memo` (per hypervisor and policy) holds each port's own verdict from the
    previous report and is replaced by this report's ports: a report re-checks only the
    ports that changed. A port without dove-ips learns its addresses (`learn`): those it
    has learned are its addresses, less any another endpoint holds (they stay with the
    first; the port is not refused for them). A port with the MAC and iface-id of an
    endpoint active on another hypervisor is a live migration's standby port (Endpoint.
    standby), and so is the port of a VM whose move `active_at` ((network, MAC) ->
    (hypervisor, iface-id)) says has taken effect elsewhere; never a port of another
    iface-id (it is refused for the MAC, as always).
    """
    endpoints: list[Endpoint] = []
    refused: list[Refusal] = []
    previous = dict(memo or {})
    if memo is not None:
        memo.clear()
    for port in ports:
        if not is_vm_port(port) or port.ofport is None or port.ofport <= 0:
            continue  # not a VM port, or OVS has not numbered it yet
        ep_or_reason = (previous[port] if port in previous
                        else _endpoint(policy, hypervisor, port, learn))
        if memo is not None:
            memo[port] = ep_or_reason
        if ep_or_reason is None:
            continue
        if isinstance(ep_or_reason, str):
            refused.append(_refusal(hypervisor, port, ep_or_reason))
            continue
        if _is_standby(directory, hypervisor, ep_or_reason, active_at or {}):
            endpoints.append(replace(ep_or_reason, standby=True, punt=False))
            continue
        if ep_or_reason.learning:
            ep_or_reason = _unclaimed(directory, ep_or_reason, endpoints, learn)
        reason = _conflict(directory, ep_or_reason, endpoints)
        if reason:
            refused.append(_refusal(hypervisor, port, reason))
        else:
            endpoints.append(ep_or_reason)
    return endpoints, refused


def _refusal(hypervisor: str, port: PortInfo, reason: str) -> Refusal:
    return Refusal(hypervisor, port.name, port.ids().get(contract.IFACE_ID, ""), reason)


def _endpoint(policy: Policy, hypervisor: str, port: PortInfo,
              learn: LearnSettings) -> Endpoint | str | None:
    ids = port.ids()
    key = ids.get(contract.NETWORK)
    if key is None:  # plugged as libvirt and os-vif do: a port mapping may bind it
        mapped = policy.map_port(ids.get(contract.IFACE_ID, ""), ids.get(contract.VM_ID, ""))
        if mapped is None or isinstance(mapped, str):
            return mapped
        net: Network | None = mapped
    else:
        net = policy.network(key)
    if net is None:
        return f"unknown network {key!r} (not in the policy)"
    mac = ids.get(contract.ATTACHED_MAC, "").lower()
    if not MAC.match(mac) or int(mac[:2], 16) & 1 or mac == ZERO_MAC:
        return f"{contract.ATTACHED_MAC} {ids.get(contract.ATTACHED_MAC)!r} is not a unicast MAC"
    if port.ofport is None or not 0 < port.ofport <= MAX_PORT:
        return f"ofport {port.ofport} is not a port a VM can be on"
    iface_id = ids.get(contract.IFACE_ID) or port.name
    if contract.IPS not in ids:  # a learning port
        entries = learned.parse(ids.get(contract.LEARNED_IPS, ""), net, learn.limit)
        return Endpoint(net.key, mac, tuple(ip for ip, _ in entries), hypervisor, port.name,
                        port.ofport, iface_id, learn.idle_s,
                        tuple(since for _, since in entries), len(entries) < learn.limit)
    ips = _addresses(net, ids[contract.IPS])
    if isinstance(ips, str):
        return ips
    return Endpoint(net.key, mac, ips, hypervisor, port.name, port.ofport, iface_id)


def _is_standby(directory: Directory, hypervisor: str, ep: Endpoint,
                active_at: Mapping[tuple[str, str], tuple[str, str]]) -> bool:
    """Another hypervisor has this VM's active port (same network, MAC and iface-id), or
    the VM's move went elsewhere."""
    where = active_at.get((ep.network, ep.mac))
    if where is not None:
        return where[1] == ep.iface_id and where[0] != hypervisor
    holder = directory.by_mac(ep.network, ep.mac)
    return (holder is not None and holder.hypervisor != hypervisor
            and holder.iface_id == ep.iface_id)


def _unclaimed(directory: Directory, ep: Endpoint, accepted: list[Endpoint],
               learn: LearnSettings) -> Endpoint:
    """A learning endpoint without the learned addresses another endpoint holds."""
    taken = {ip for other in accepted if other.network == ep.network for ip in other.ips}
    keep = [i for i, ip in enumerate(ep.ips) if ip not in taken and not _held_elsewhere(
        directory, ep, ip)]
    if len(keep) == len(ep.ips):
        return ep
    return replace(ep, ips=tuple(ep.ips[i] for i in keep),
                   learned_at=tuple(ep.learned_at[i] for i in keep),
                   punt=len(keep) < learn.limit)


def _held_elsewhere(directory: Directory, ep: Endpoint, ip: str) -> bool:
    holder = directory.by_ip(ep.network, ip)
    return holder is not None and holder.hypervisor != ep.hypervisor


def _addresses(net: Network, raw: str) -> tuple[str, ...] | str:
    ips: list[str] = []
    parts = [part.strip() for part in raw.split(",", MAX_ADDRESSES) if part.strip()]
    if len(parts) > MAX_ADDRESSES:
        return f"{contract.IPS}: more than {MAX_ADDRESSES} addresses"
    for text in parts:
        why = net.host_problem(text)
        if why:
            return f"{contract.IPS}: {why}"
        ips.append(str(ipaddress.ip_address(text)))
    return tuple(ips)


def _conflict(directory: Directory, ep: Endpoint, accepted: list[Endpoint]) -> str | None:
    for other in accepted:
        if other.network == ep.network and other.mac == ep.mac:
            return f"MAC {ep.mac} is also bound to {other.port} on this hypervisor"
        if other.network == ep.network and set(other.ips) & set(ep.ips):
            shared = sorted(set(other.ips) & set(ep.ips))[0]
            return f"address {shared} is also bound to {other.port}"
    holder = directory.by_mac(ep.network, ep.mac)
    if holder is not None and holder.hypervisor != ep.hypervisor:
        return f"MAC {ep.mac} is bound on {holder.hypervisor} ({holder.port}) already"
    for ip in ep.ips:
        holder = directory.by_ip(ep.network, ip)
        if holder is not None and holder.hypervisor != ep.hypervisor:
            return f"address {ip} is bound on {holder.hypervisor} ({holder.port}) already"
    return None
