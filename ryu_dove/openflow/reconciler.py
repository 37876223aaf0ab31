"""One reconciler per switch: make br-int's flows equal the desired set, sending only the diff.

It learns what the switch has by dumping its flows (never by clearing them), diffs by cookie
(a flow's cookie is a hash of its whole content, see ryu_dove.pipeline.flows), and sends the
difference. After a full diff (on connect, on a new desired set, after an error) it diffs
only the cookies it is told changed, so an update costs in proportion to the change, not to
the switch's thousands of flows. Replies arrive as events on the engine thread, which owns
every reconciler; nothing here blocks.

How a difference is sent (the Neutron OVS agent's split): the first one after the switch's
flows were read, and any large one, as one atomic, ordered ONF bundle (OPEN, deletes, adds,
COMMIT: two replies); a small one afterwards (an endpoint came or went: a few flows) as plain
flow-mods, adds before deletes, then one barrier (one reply). Adds first keeps it hitless: a
changed flow has the same match and priority as the one it replaces, so OVS replaces it in
place and the delete by the old cookie finds nothing; a new flow is in before an old one
goes. At a thousand switches the replies, not the flow-mods, were the cost.

Before it reads the flows, it makes sure the switch has the meters punts to the controller
go through (docs/research/punts-ovs-3.1.md): the punt meter every metered Controller action
names, and the bridge's "controller" meter for any punt without one. A meter is added, or
modified if the switch has it already, never deleted: OVS binds a punt flow to its meter
when the flow is added, and a flow naming a missing meter stays unmetered for good.

If the switch reports an error for any message of an update, the reconciler forgets what it
believed was installed and dumps the flows again: the next diff repairs whatever happened.
A flow the switch refused is not sent again (that would loop); it stays reported as
rejected until the desired state no longer contains it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ryu_dove.events import MessageKind
from ryu_dove.openflow import messages
from ryu_dove.pipeline.flows import Flow, is_ours
from ryu_dove.pipeline.parts.common import ACTIVATION_METER, PUNT_METER

LOG = logging.getLogger(__name__)
XID_BASE = 0x8000_0000  # above os-ken's own xids, so replies are never confused
SMALL_UPDATE = 64  # flow-mods; after the first sync, a difference this small goes unbundled
# packets per second and burst: what one hypervisor may send to the controller, as punts that
# name the punt meter, and as any other (the bridge's "controller" meter). Decision: enough
# for a hypervisor's VMs to announce themselves at boot, far below what the engine takes.
METERS = {PUNT_METER: (100, 50), ACTIVATION_METER: (50, 20),
          messages.OFPM_CONTROLLER: (200, 100)}
OFPET_METER_MOD_FAILED, OFPMMFC_METER_EXISTS = 12, 1
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Phase(Enum):
    DUMPING = "dumping"  # waiting for the switch's flow table
    IDLE = "idle"
    COMMITTING = "committing"  # a bundle is on its way


@dataclass
class Latency:
    """Counts of update times per bucket (the last bucket: above every bound), and their
    sum; read as a Prometheus histogram (ryu_dove.northbound.metrics)."""

    bounds: tuple[float, ...] = LATENCY_BOUNDS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


@dataclass
class ReconcilerStats:
    bundles: int = 0
    plain_updates: int = 0  # small differences sent as flow-mods and a barrier
    flow_mods: int = 0
    resyncs: int = 0
    errors: int = 0
    last_commit_s: float = 0.0
    packet_outs: int = 0  # announcements sent
    latency: Latency = field(default_factory=Latency)  # send to commit, per update


class Reconciler:
    def __init__(self, name: str, dp: Any, send: Callable[[bytes], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.dp = dp
        self._send_bytes = send or dp.send  # whole messages, written to the switch socket
        self._clock = clock
        self._xids = itertools.count(XID_BASE)
        self._bundle_ids = itertools.count(1)
        self.phase = Phase.DUMPING
        self.desired: Mapping[int, Flow] | None = None  # None: not computed yet
        self._changed: set[int] | None = None  # cookies to re-diff; None: all of them
        self.installed: set[int] = set()
        self.foreign = 0
        self.hold = False  # True while the controller is still learning (startup grace)
        self.stats = ReconcilerStats()
        self.rejected: set[int] = set()  # cookies of flows the switch refused
        self._dump_xid = -1
        self._dump_parts: list[Any] = []
        self._update: _Update | None = None  # the update in flight, bundled or not
        self._synced = False  # a first difference since the last read of the switch went in
        self._meter_xids: dict[int, int] = {}  # meter-mods in flight -> their meter id
        self.meters_failed: set[int] = set()  # meters the switch would not take
        self.counters: dict[int, int] = {}  # cookie -> packets, from the last counter read
        self._counter_xid: int | None = None
        self._counter_asked = 0.0
        self.counters_read_at = 0.0  # when the engine last asked for counters (its clock)
        self._counter_parts: dict[int, int] = {}

    # --- inputs -----------------------------------------------------------------------

    def start(self) -> None:
        for meter_id in METERS:
            self._send_meter(meter_id, messages.OFPMC_ADD)
        self._dump()

    def set_desired(self, flows: Mapping[int, Flow] | Iterable[Flow]) -> None:
        """The switch's whole desired flow set, as cookie -> flow or as flows. A mapping is
        kept as it is, not copied: the caller may change it later and then tells which
        cookies it changed with `changed()`."""
        self.desired = flows if isinstance(flows, Mapping) else {f.cookie: f for f in flows}
        self._changed = None
        if self.rejected:
            self.rejected = {c for c in self.rejected if c in self.desired}
        self._push()

    def changed(self, cookies: Iterable[int]) -> None:
        """These cookies were added to or removed from the desired mapping."""
        if self._changed is not None:
            self._changed.update(cookies)
        self._push()

    def lost(self, cookie: int, reinstall: bool) -> None:
        """The switch removed this flow itself (its idle timeout): not installed any more;
        put back if `reinstall` (the desired state still has it, e.g. nobody retired it)."""
        self.installed.discard(cookie)
        if reinstall:
            self.changed([cookie])

    def packet_out(self, data: bytes, ports: Iterable[int]) -> None:
        """Send a frame the controller built out of these ports (an announcement)."""
        self.stats.packet_outs += 1
        self._send_bytes(messages.packet_out(data, ports, self._xid()))

    def release(self) -> None:
        """End of the startup grace: from now on the desired state is complete."""
        self.hold = False
        self._push()

    def ask_counters(self, table_id: int) -> None:
        """Read the packet counts of one table's flows (the rules' hits); the answer goes to
        `counters`. One request at a time; none while the flow table is read."""
        if self.phase is Phase.DUMPING or (
                self._counter_xid is not None and self._clock() - self._counter_asked < 60.0):
            return  # (an answer lost for a minute is given up)
        self._counter_asked = self._clock()
        self._counter_xid = self._xid()
        self._counter_parts = {}
        self._send_bytes(messages.flow_stats_request(self._counter_xid, table_id))

    def on_flow_stats(self, msg: Any) -> None:
        if msg.xid == self._counter_xid:
            self._counter_parts.update(zip(msg.cookies, msg.packets, strict=False))
            if not msg.more:
                self.counters, self._counter_xid = self._counter_parts, None
            return
        if msg.xid != self._dump_xid:
            return
        self._dump_parts.append(msg)
        if msg.more:
            return
        cookies = [c for part in self._dump_parts for c in part.cookies]
        self._dump_parts = []
        self.installed = {c for c in cookies if is_ours(c)}
        self._changed = None
        self.foreign = len(cookies) - len(self.installed)
        if self.foreign:
            LOG.warning("%s: %d flows on br-int are not ryu_dove's (left alone)",
                        self.name, self.foreign)
        LOG.info("%s: switch has %d ryu_dove flows", self.name, len(self.installed))
        self.phase = Phase.IDLE
        self._push()

    def on_bundle_reply(self, msg: Any) -> None:
        b = self._update
        if b is not None and b.bundled and msg.xid == b.commit_xid:
            self._committed(b)

    def on_barrier_reply(self, msg: Any) -> None:
        b = self._update
        if b is not None and not b.bundled and msg.xid == b.commit_xid:
            self._committed(b)

    def _committed(self, b: _Update) -> None:
        self._update = None
        if b.failed:
            self._resync("an error was reported for an update")
            return
        self.installed -= b.deletes
        self.installed |= b.adds
        self._synced = True
        if b.bundled:
            self.stats.bundles += 1
        else:
            self.stats.plain_updates += 1
        self.stats.last_commit_s = self._clock() - b.sent_at
        self.stats.latency.observe(self.stats.last_commit_s)
        # DEBUG: an endpoint event commits an update on every hypervisor of its tenant, and at
        # scale a log line (with its flush) per update cost more than the update itself.
        LOG.debug("%s: %s %d committed: +%d -%d flows in %.1f ms", self.name,
                  "bundle" if b.bundled else "update", b.id, len(b.adds), len(b.deletes),
                  1000 * self.stats.last_commit_s)
        self.phase = Phase.IDLE
        self._push()

    def on_error(self, msg: Any) -> bool:
        """Handle an OpenFlow error if it answers one of our messages; True if it did."""
        meter_id = self._meter_xids.pop(msg.xid, None)
        if meter_id is not None:
            self._meter_refused(meter_id, msg)
            return True
        b = self._update
        if b is None or not b.owns(msg.xid):
            return False
        self.stats.errors += 1
        what = b.describe(msg.xid)
        added = b.added_cookie(msg.xid)
        refused = self.desired.get(added) if self.desired and added is not None else None
        if refused is not None:
            what = refused.describe()
        LOG.error("%s: switch refused a message of %s %d: type=%s code=%s (%s)",
                  self.name, "bundle" if b.bundled else "update", b.id, msg.type, msg.code,
                  what)
        b.failed = True
        if added is not None:
            self.rejected.add(added)
        if b.bundled and msg.xid == b.commit_xid:  # the whole bundle was rolled back
            self._update = None
            self._resync("the bundle commit failed")
        return True

    # --- state ---------------------------------------------------------------------------

    @property
    def awaiting(self) -> tuple[MessageKind, int] | None:
        """The answer this reconciler waits for, as (kind, xid): the flow dump while it
        reads the switch, a bundle or barrier reply while an update is in flight."""
        if self.phase is Phase.DUMPING:
            return MessageKind.FLOW_STATS, self._dump_xid
        if self._update is not None:
            kind = MessageKind.BUNDLE if self._update.bundled else MessageKind.BARRIER
            return kind, self._update.commit_xid
        return None

    @property
    def in_sync(self) -> bool:
        return (self.phase is Phase.IDLE and self.desired is not None
                and self.desired.keys() == self.installed)

    def _push(self) -> None:
        if self.phase is not Phase.IDLE or self.desired is None or self.hold:
            return
        desired, installed = self.desired, self.installed
        if self._changed is None:
            adds = desired.keys() - installed - self.rejected
            deletes = installed - desired.keys()
        else:
            adds = {c for c in self._changed if c in desired and c not in installed}
            adds -= self.rejected
            deletes = {c for c in self._changed if c not in desired and c in installed}
            self.rejected -= {c for c in self._changed if c not in desired}
        self._changed = set()
        if not adds and not deletes:
            return
        if self._synced and len(adds) + len(deletes) <= SMALL_UPDATE:
            self._send_plain(adds, deletes)
        else:
            self._send_bundle(adds, deletes)

    def _send_plain(self, adds: set[int], deletes: set[int]) -> None:
        """Flow-mods, adds first (see the module's doc), then a barrier to learn it is done."""
        assert self.desired is not None
        b = _Update(next(self._bundle_ids), adds, deletes, self._clock(),
                    sorted(deletes), sorted(adds), self._xid(), bundled=False)
        self._update = b
        self.phase = Phase.COMMITTING
        desired = self.desired
        msgs = [*(messages.flow_add_bytes(desired[c]) for c in b.add_order),
                *(messages.flow_delete_bytes(c) for c in b.delete_order)]
        parts = [messages.with_xid(msg, b.first_xid if i == 0 else self._xid())
                 for i, msg in enumerate(msgs)]
        b.commit_xid = self._xid()
        parts.append(messages.barrier_request(b.commit_xid))
        self._send_bytes(b"".join(parts))
        self.stats.flow_mods += len(adds) + len(deletes)

    def _send_bundle(self, adds: set[int], deletes: set[int]) -> None:
        """OPEN, the deletes then the adds, COMMIT: built as bytes and sent as one buffer."""
        assert self.desired is not None
        dp = self.dp
        # Consecutive xids: OPEN, the deletes, the adds, COMMIT; an error's xid says which.
        b = _Update(next(self._bundle_ids), adds, deletes, self._clock(),
                    sorted(deletes), sorted(adds), self._xid())
        self._update = b
        self.phase = Phase.COMMITTING
        flags = dp.ofproto.ONF_BF_ATOMIC | dp.ofproto.ONF_BF_ORDERED
        parts = [messages.bundle_ctrl(b.id, messages.BUNDLE_OPEN, flags, b.first_xid)]
        for cookie in b.delete_order:  # deletes first: a changed flow is a delete + an add
            parts.append(messages.bundle_add(b.id, flags, messages.flow_delete_bytes(cookie),
                                         self._xid()))
        desired, add_bytes = self.desired, messages.flow_add_bytes
        for cookie in b.add_order:
            parts.append(messages.bundle_add(b.id, flags, add_bytes(desired[cookie]), self._xid()))
        b.commit_xid = self._xid()
        parts.append(messages.bundle_ctrl(b.id, messages.BUNDLE_COMMIT, flags, b.commit_xid))
        self._send_bytes(b"".join(parts))
        self.stats.flow_mods += len(adds) + len(deletes)

    def _xid(self) -> int:
        return next(self._xids) & 0xFFFF_FFFF

    def _send_meter(self, meter_id: int, command: int) -> None:
        xid = self._xid()
        if len(self._meter_xids) > 4 * len(METERS):  # answered ones never come back here
            self._meter_xids.clear()
        self._meter_xids[xid] = meter_id
        pktps, burst = METERS[meter_id]
        self._send_bytes(messages.meter_mod(meter_id, pktps, burst, command, xid))

    def _meter_refused(self, meter_id: int, msg: Any) -> None:
        if (msg.type, msg.code) == (OFPET_METER_MOD_FAILED, OFPMMFC_METER_EXISTS):
            self._send_meter(meter_id, messages.OFPMC_MODIFY)  # ours from before: its rate
            return
        self.meters_failed.add(meter_id)
        LOG.error("%s: switch refused meter %#x: type=%s code=%s; punts through it would "
                  "go unmetered", self.name, meter_id, msg.type, msg.code)

    def _dump(self) -> None:
        self.phase = Phase.DUMPING
        self._synced = False
        self._dump_parts = []
        self._dump_xid = self._xid()
        self._send_bytes(messages.flow_stats_request(self._dump_xid))

    def _resync(self, why: str) -> None:
        self.stats.resyncs += 1
        LOG.warning("%s: %s; reading the switch's flows again", self.name, why)
        self._dump()


@dataclass
class _Update:
    """An update in flight: a bundle, or plain flow-mods and a barrier (bundled=False)."""

    id: int
    adds: set[int]
    deletes: set[int]
    sent_at: float
    delete_order: list[int]  # the order they were sent in
    add_order: list[int]
    first_xid: int  # then one xid per message, in the order sent; the last is commit_xid
    commit_xid: int = -1  # the bundle's COMMIT, or the barrier
    failed: bool = False
    bundled: bool = True

    # Consecutive xids. Bundle: OPEN, the deletes, the adds, COMMIT. Plain: the adds, the
    # deletes, BARRIER.

    def _offset(self, xid: int) -> int:
        return (xid - self.first_xid) & 0xFFFF_FFFF  # xids wrap at 32 bits

    def owns(self, xid: int) -> bool:
        extra = 1 if self.bundled else 0
        return self._offset(xid) <= len(self.delete_order) + len(self.add_order) + extra

    def _position(self, xid: int) -> tuple[str, int | None]:
        """What message `xid` was: ("add"|"delete", cookie) or ("open"|"commit"|"barrier", None)."""
        i, d, a = self._offset(xid), len(self.delete_order), len(self.add_order)
        if self.bundled:
            if i == 0:
                return "open", None
            if i <= d:
                return "delete", self.delete_order[i - 1]
            if i <= d + a:
                return "add", self.add_order[i - 1 - d]
            return "commit", None
        if i < a:
            return "add", self.add_order[i]
        if i < a + d:
            return "delete", self.delete_order[i - a]
        return "barrier", None

    def added_cookie(self, xid: int) -> int | None:
        """The cookie of the flow an add message carried, if `xid` is an add's."""
        kind, cookie = self._position(xid)
        return cookie if kind == "add" else None

    def describe(self, xid: int) -> str:
        """What message `xid` was, for logs."""
        if not self.owns(xid):
            return "?"
        kind, cookie = self._position(xid)
        return kind if cookie is None else f"{kind} cookie {cookie:#x}"
