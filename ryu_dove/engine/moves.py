"""Live migration as the engine sees it (docs/migration.md).

The destination port of a migrating VM is plugged with the VM's MAC and iface-id while the
source still runs: it is bound as a standby port (ryu_dove.directory.bindings), which makes
its hypervisor ready for the VM's network and copies what arrives on it to the controller.
The first packet the VM sends there (QEMU's RARP announcement, or anything) makes the move
take effect: `active_at` then names the destination for that (network, MAC), the source's
port becomes the standby one, and every hypervisor is updated at once. An entry goes when no
standby port of it is left (the source unplugged); if the source goes first, the standby
port is bound the ordinary way.

A VM that moves back and forth (two ports speaking with one MAC: a cloned VM, or a
hypervisor plugging a port to take another's VM over) is held where it is after
MAX_MOVES moves within FLAP_WINDOW_S, for FLAP_WINDOW_S, and the operator is told: a
switch's MAC-move (flap) detection, for the overlay.

It also says when to announce an endpoint (a gratuitous ARP or unsolicited advertisement on
its network's VM ports): after a move, and when an address is bound to a MAC other than the
one that held it last (peers' ARP caches may name the old one).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from ovsdb_agent.peerlog import printable
from ryu_dove.directory import Directory, Endpoint

LOG = logging.getLogger(__name__)
MAX_HOLDERS = 65536  # (network, address) -> last MAC remembered, oldest forgotten first
MAX_MOVES, FLAP_WINDOW_S = 4, 60.0  # more moves of one VM within the window: held

Key = tuple[str, str]  # (network, MAC)


class Moves:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.active_at: dict[Key, tuple[str, str]] = {}  # -> (hypervisor, iface-id)
        self.moves = 0
        self.held = 0  # moves refused because the VM was flapping
        self._clock = clock
        self._recent: dict[Key, deque[float]] = {}
        self._held_until: dict[Key, float] = {}
        self._holders: OrderedDict[tuple[str, str], str] = OrderedDict()

    def activate(self, standby: Endpoint, active: Endpoint | None) -> bool:
        """The VM spoke on its standby port: from now on that port is the active one
        (False: it is flapping between ports and stays where it is)."""
        key, now = (standby.network, standby.mac), self._clock()
        if self._held_until.get(key, 0.0) > now:
            self.held += 1
            return False
        recent = self._recent.setdefault(key, deque(maxlen=MAX_MOVES))
        if len(recent) == MAX_MOVES and now - recent[0] < FLAP_WINDOW_S:
            self._held_until[key] = now + FLAP_WINDOW_S
            self.held += 1
            where = active.hypervisor if active is not None else "nowhere"
            LOG.warning("endpoint %s %s moved %d times in %.0f s (two ports speak with its "
                        "MAC: a cloned VM, or a hijack?); kept on %s for %.0f s",
                        standby.network, standby.mac, MAX_MOVES, now - recent[0], where,
                        FLAP_WINDOW_S)
            return False
        recent.append(now)
        self.active_at[key] = (standby.hypervisor, standby.iface_id)
        self.moves += 1
        source = f"{active.hypervisor} port {printable(active.port)}" if active else "nowhere"
        LOG.info("endpoint %s %s moved from %s to %s port %s (it spoke there)",
                 standby.network, standby.mac, source, standby.hypervisor,
                 printable(standby.port))
        return True

    def waiting(self, directory: Directory, name: str, before: Iterable[Endpoint],
                after: Iterable[Endpoint]) -> set[str]:
        """Hypervisors with a standby port whose active endpoint just left `name`: bound
        the ordinary way now (or their move's entry dropped)."""
        left = {(e.network, e.mac) for e in before if not e.standby} - {
            (e.network, e.mac) for e in after if not e.standby}
        return {sb.hypervisor for key in left for sb in directory.standby(*key)
                if sb.hypervisor != name}

    def settle(self, directory: Directory) -> None:
        """Forget the moves no standby port is left of, and those whose destination port
        went (the VM died there, or was moved on by hand): its other port is then bound
        the ordinary way instead of standing by for good. And flap records gone stale."""
        for key, (hv, _) in list(self.active_at.items()):
            there = any((e.network, e.mac) == key for e in directory.endpoints_on(hv))
            if not there or not directory.standby(*key):
                del self.active_at[key]
        now = self._clock()
        for key in [k for k, r in self._recent.items()
                    if now - r[-1] > FLAP_WINDOW_S and self._held_until.get(k, 0.0) <= now]:
            self._recent.pop(key)
            self._held_until.pop(key, None)

    def announce(self, name: str, before: Iterable[Endpoint],
                 after: Iterable[Endpoint]) -> list[Endpoint]:
        """The endpoints newly active on `name` that peers may hold stale entries for."""
        before = tuple(before)
        was = {(e.network, e.mac) for e in before if not e.standby}
        unchanged = set(before)  # (their addresses were remembered when they came)
        out = []
        for ep in after:
            if ep.standby or ep in unchanged:
                continue
            moved = self.active_at.get((ep.network, ep.mac)) == (name, ep.iface_id)
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
