"""The engine's side of learning: punts and idle expiries become learned addresses.

A punt is copied from a learning port's flows (ryu_dove.pipeline.parts.port_security) and
arrives through the switch's connection; the engine hands it here with the endpoint bound
on that port. What the frame claims (frames.py) is checked as a declared address would be:
inside the network's subnet and not its gateway (Network.host_problem), not held by another
endpoint of the network (the first keeps it: refused and logged, never stolen), within the
port's limit. A claim taken becomes the port's new dove-learned-ips value: kept here as an
overlay on the port's reported external_ids, so the binding sees it at once, and written to
the hypervisor's OVSDB, where the next reports carry it (then the overlay goes).

A port whose claims are refused again and again (a VM trying addresses) is muted for a while:
its punts are withdrawn, so it cannot keep the hypervisor's punt meter to itself. Each
switch's punts are also rate-limited here, before any parsing, in case its meter is missing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ovsdb_agent import contract
from ovsdb_agent.peerlog import RateLimit, printable
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory import Directory, Endpoint
from ryu_dove.learning import frames, learned
from ryu_dove.learning.settings import LearnSettings
from ryu_dove.policy import Network

LOG = logging.getLogger(__name__)

PortKey = tuple[str, str]  # (hypervisor, port name)


@dataclass
class LearnStats:
    rate_limited: int = 0  # dropped by the per-switch budget before parsing
    learned: int = 0
    refused: int = 0  # claims checked and refused
    expired: int = 0
    muted: int = 0  # times a port was muted


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Learner:
    settings: LearnSettings
    wall: Callable[[], float] = time.time
    clock: Callable[[], float] = time.monotonic
    stats: LearnStats = field(default_factory=LearnStats)
    _overlay: dict[str, dict[str, str]] = field(default_factory=dict)  # hv -> port -> value
    _refusals: dict[PortKey, deque[float]] = field(default_factory=dict)
    _muted: dict[PortKey, float] = field(default_factory=dict)  # until (clock)
    _buckets: dict[tuple[int, str], _Bucket] = field(default_factory=dict)  # (dpid, kind)
    _landed: dict[str, list[str]] = field(default_factory=dict)  # hv -> ports read back
    _mute_changed: set[str] = field(default_factory=set)  # hvs with a port muted since

    def __post_init__(self) -> None:
        self._log = RateLimit(LOG, burst=20)

    # --- what the binding sees ---------------------------------------------------------

    def ports(self, hv: str, vm_ports: Iterable[PortInfo]) -> list[PortInfo]:
        """The hypervisor's VM ports with the learned values not yet reported in place; an
        overlay the report now shows (or whose port is gone) is dropped."""
        overlay = self._overlay.get(hv)
        if not overlay:
            return list(vm_ports)
        out, seen = [], set()
        for port in vm_ports:
            value = overlay.get(port.name)
            if value is None:
                out.append(port)
                continue
            seen.add(port.name)
            ids = port.ids()
            if ids.get(contract.LEARNED_IPS, "") == value:
                del overlay[port.name]  # written and read back
                self._landed.setdefault(hv, []).append(port.name)
                out.append(port)
                continue
            ids[contract.LEARNED_IPS] = value
            out.append(replace(port, external_ids=tuple(sorted(ids.items()))))
        for name in overlay.keys() - seen:  # unplugged before its value landed
            del overlay[name]
            self._landed.setdefault(hv, []).append(name)
        if not overlay:
            del self._overlay[hv]
        return out

    def landed(self, hv: str) -> list[str]:
        """Ports whose value the last ports() found written (or whose port went): the
        OVSDB manager need not keep writing them."""
        return self._landed.pop(hv, [])

    def muted(self, hv: str) -> frozenset[str]:
        return frozenset(port for (h, port) in self._muted if h == hv)

    def mute_changes(self) -> set[str]:
        """Hypervisors with a port muted or unmuted since the last call."""
        now = self.clock()
        ended = [key for key, until in self._muted.items() if until <= now]
        for key in ended:
            del self._muted[key]
            self._refusals.pop(key, None)
        changed, self._mute_changed = self._mute_changed | {hv for hv, _ in ended}, set()
        window = self.settings.mute_window_s
        for key in [k for k, r in self._refusals.items()  # bounded: only recent strikers
                    if now - r[-1] > window and k not in self._muted]:
            del self._refusals[key]
        return changed

    # --- punts and expiries ------------------------------------------------------------

    def admit(self, dpid: int, kind: str = "learn") -> bool:
        """The switch's punt budget of that kind (a token bucket) allows one more. Learning
        and migrations' activations have a budget each: a VM flooding the one cannot
        starve the other."""
        now, s = self.clock(), self.settings
        bucket = self._buckets.setdefault((dpid, kind), _Bucket(float(s.punt_burst), now))
        bucket.tokens = min(float(s.punt_burst), bucket.tokens + (now - bucket.at) *
                            s.punts_per_s)
        bucket.at = now
        if bucket.tokens < 1.0:
            self.stats.rate_limited += 1
            return False
        bucket.tokens -= 1.0
        return True

    def forget_switch(self, dpid: int) -> None:
        for key in [k for k in self._buckets if k[0] == dpid]:
            del self._buckets[key]

    def punt(self, ep: Endpoint, net: Network, directory: Directory,
             frame: bytes) -> str | None:
        """The port's new dove-learned-ips value if the frame taught it an address."""
        if not (ep.learning and ep.punt):
            return None
        entries = list(zip(ep.ips, ep.learned_at, strict=True))
        refused = self.stats.refused
        for claim in frames.claims(frame):
            if claim.mac != ep.mac or any(ip == claim.ip for ip, _ in entries):
                continue  # (entries start as the port's addresses)
            if len(entries) >= self.settings.limit:
                break  # full: its punts go with the next flows; not the VM's fault
            why = self._problem(ep, net, directory, claim.ip)
            if why is not None:
                self._refused(ep, claim, why)
                continue
            entries.append((claim.ip, int(self.wall())))
            self.stats.learned += 1
            LOG.info("learned %s for %s %s on %s port %s (from %s)", claim.ip, ep.network,
                     ep.mac, ep.hypervisor, printable(ep.port), claim.how)
        if len(entries) == len(ep.ips):
            full = len(entries) >= self.settings.limit  # its punts are on their way out
            if self.stats.refused == refused and not full:  # it taught nothing: a strike
                self._strike(ep)
            return None
        return self._keep(ep, entries)

    def retire(self, ep: Endpoint, ip: str) -> str | None:
        """The port's new value once `ip` went unused for the idle time."""
        if not ep.learning or ip not in ep.ips:
            return None
        self.stats.expired += 1
        LOG.info("retired %s of %s %s on %s port %s: unused for %d s", ip, ep.network,
                 ep.mac, ep.hypervisor, printable(ep.port), ep.learn_idle_s)
        entries = [(i, t) for i, t in zip(ep.ips, ep.learned_at, strict=True) if i != ip]
        return self._keep(ep, entries)

    def carry(self, hv: str, port: str, value: str) -> None:
        """A moved VM's learned addresses, for its new port (before OVSDB says so)."""
        self._overlay.setdefault(hv, {})[port] = value

    def _keep(self, ep: Endpoint, entries: list[tuple[str, int]]) -> str:
        value = learned.render(entries)
        self.carry(ep.hypervisor, ep.port, value)
        return value

    def _problem(self, ep: Endpoint, net: Network, directory: Directory,
                 ip: str) -> str | None:
        why = net.host_problem(ip)
        if why is not None:
            return why
        holder = directory.by_ip(ep.network, ip)
        if holder is not None and (holder.hypervisor, holder.port) != (ep.hypervisor, ep.port):
            return f"held by {holder.mac} on {holder.hypervisor} port {holder.port}"
        return None

    def _refused(self, ep: Endpoint, claim: frames.Claim, why: str) -> None:
        self.stats.refused += 1
        self._log.log(logging.WARNING, ep.hypervisor, "not learning %s for %s %s on %s port "
                      "%s (from %s): %s", claim.ip, ep.network, ep.mac, ep.hypervisor,
                      printable(ep.port), claim.how, printable(why))
        self._strike(ep)

    def _strike(self, ep: Endpoint) -> None:
        """A punt that was refused, or that taught nothing: enough of them mute the port."""
        key = (ep.hypervisor, ep.port)
        now, s = self.clock(), self.settings
        recent = self._refusals.setdefault(key, deque(maxlen=s.mute_after))
        recent.append(now)
        if len(recent) >= s.mute_after and now - recent[0] <= s.mute_window_s \
                and key not in self._muted:
            self._muted[key] = now + s.mute_s
            self._mute_changed.add(ep.hypervisor)
            self.stats.muted += 1
            LOG.warning("%s port %s: %d refused or empty claims in %.0f s; not learning "
                        "from it for %.0f s", ep.hypervisor, printable(ep.port), len(recent),
                        now - recent[0], s.mute_s)
