"""Live migration as the engine sees it (docs/migration.md).

The destination port of a migrating VM is plugged with the VM's MAC and iface-id while the
source still runs: it is bound as a standby port (ryu_dove.directory.bindings), which makes
its hypervisor ready for the VM's network and copies what arrives on it to the controller.
The first packet the VM sends there (QEMU's RARP announcement, or anything) makes the move
take effect: `active_at` then names the destination for that (network, MAC), the source's
port becomes the standby one, and every hypervisor is updated at once. An entry goes when no
standby port of it is left (the source unplugged); if the source goes first, the standby
port is bound the ordinary way.

It also says when to announce an endpoint (a gratuitous ARP or unsolicited advertisement on
its network's VM ports): after a move, and when an address is bound to a MAC other than the
one that held it last (peers' ARP caches may name the old one).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from ovsdb_agent.peerlog import printable
from ryu_dove.directory import Directory, Endpoint

LOG = logging.getLogger(__name__)
MAX_HOLDERS = 65536  # (network, address) -> last MAC remembered, oldest forgotten first

Key = tuple[str, str]  # (network, MAC)


class Moves:
    def __init__(self) -> None:
        self.active_at: dict[Key, str] = {}
        self.moves = 0
        self._holders: OrderedDict[tuple[str, str], str] = OrderedDict()

    def activate(self, standby: Endpoint, active: Endpoint | None) -> None:
        """The VM spoke on its standby port: from now on that port is the active one."""
        self.active_at[(standby.network, standby.mac)] = standby.hypervisor
        self.moves += 1
        source = f"{active.hypervisor} port {printable(active.port)}" if active else "nowhere"
        LOG.info("endpoint %s %s moved from %s to %s port %s (it spoke there)",
                 standby.network, standby.mac, source, standby.hypervisor,
                 printable(standby.port))

    def waiting(self, directory: Directory, name: str, before: Iterable[Endpoint],
                after: Iterable[Endpoint]) -> set[str]:
        """Hypervisors with a standby port whose active endpoint just left `name`: bound
        the ordinary way now (or their move's entry dropped)."""
        left = {(e.network, e.mac) for e in before if not e.standby} - {
            (e.network, e.mac) for e in after if not e.standby}
        return {sb.hypervisor for key in left for sb in directory.standby(*key)
                if sb.hypervisor != name}

    def settle(self, directory: Directory) -> None:
        """Forget the moves no standby port is left of."""
        for key in [k for k in self.active_at if not directory.standby(*k)]:
            del self.active_at[key]

    def announce(self, name: str, before: Iterable[Endpoint],
                 after: Iterable[Endpoint]) -> list[Endpoint]:
        """The endpoints newly active on `name` that peers may hold stale entries for."""
        was = {(e.network, e.mac) for e in before if not e.standby}
        out = []
        for ep in after:
            if ep.standby:
                continue
            moved = self.active_at.get((ep.network, ep.mac)) == name
            stale = False
            for ip in ep.ips:
                last = self._holders.get((ep.network, ip))
                stale |= last is not None and last != ep.mac
                self._remember(ep.network, ip, ep.mac)
            if (ep.network, ep.mac) not in was and (moved or stale):
                out.append(ep)
        return out

    def _remember(self, network: str, ip: str, mac: str) -> None:
        key = (network, ip)
        self._holders[key] = mac
        self._holders.move_to_end(key)
        if len(self._holders) > MAX_HOLDERS:
            self._holders.popitem(last=False)
