"""The controller's core: one thread that owns the policy, the directory and every switch.

OVSDB reports and API requests arrive as events (ryu_dove.events) on one queue, posted from
the OVSDB manager's and the API's threads; OpenFlow events come from the switch connections,
which this thread runs itself (ryu_dove.openflow.server: it waits on their sockets and the
queue at once). The engine applies a batch of events, recomputes the desired state of only
the hypervisors the batch touched, and hands it to the reconcilers (flows, written straight
to the switch sockets) and the OVSDB manager (tunnel ports). Nothing else mutates
controller state. Who does what:
- Fleet (fleet.py): the hypervisors, from their reports to their leaving;
- EndpointResolver (endpoints.py): each hypervisor's endpoints from its VM ports;
- Work (work.py): what the batch touched, recompiled and handed to the reconcilers;
- Learner (ryu_dove.learning), Moves (moves.py) and PuntHandling (punts.py): addresses
  learned from the data plane, live migrations, and the packets and expiries behind them;
- this module: the thread, the batches, dispatch, switch connections and the startup grace.

Restart safety: each hypervisor's last known state is kept on disk (saved_state.py) and
restored as stale on start, so hypervisors the controller cannot reach keep everything
towards them. Beyond that, after a (re)start the engine changes no switch and no tunnel
until it has heard from at least one hypervisor and from every hypervisor that the
reporting hypervisors' own tunnel ports name (or a deadline passes).

Outages change nothing: a hypervisor whose connections are gone keeps its endpoints,
tunnels and flows; it leaves when it says so or after the expiry (docs/availability.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ovsdb_agent.reports import HypervisorReport
from ryu_dove.directory import Directory
from ryu_dove.engine.endpoints import EndpointResolver
from ryu_dove.engine.fleet import Fleet
from ryu_dove.engine.gc_policy import GcPolicy
from ryu_dove.engine.moves import Moves
from ryu_dove.engine.punts import LearnedWriter, PuntHandling
from ryu_dove.engine.saved_state import SavedHypervisor, SavedState
from ryu_dove.engine.settings import EngineStats, SwitchIO, Timing
from ryu_dove.engine.work import TunnelWriter, Work
from ryu_dove.events import (
    Event,
    MessageKind,
    NewPolicy,
    OvsdbGone,
    OvsdbReport,
    PolicyRefused,
    SwitchDown,
    SwitchMessage,
    SwitchUp,
    ViewRequest,
)
from ryu_dove.learning.learner import Learner
from ryu_dove.learning.settings import DEFAULT as DEFAULT_LEARN
from ryu_dove.learning.settings import LearnSettings
from ryu_dove.northbound import views
from ryu_dove.openflow.reconciler import Phase, Reconciler
from ryu_dove.pipeline.stages import Stage
from ryu_dove.policy import Policy

LOG = logging.getLogger(__name__)


PUMP_S = 0.05  # during a long batch, serve the switch sockets this often
MAX_BATCH = 10000  # events taken from the queue at once
COUNTERS_CHECK_S = 0.5  # how often switches due a counter read are looked for
STALL_S = 60.0  # no batch finished for this long: the engine is stuck (the longest seen at
# a thousand switches is a few seconds)


class Engine(PuntHandling):
    def __init__(self, policy: Policy, directory: Directory, tunnels: TunnelWriter,
                 timing: Timing | None = None, clock: Callable[[], float] = time.monotonic,
                 io: SwitchIO | None = None, saved: SavedState | None = None,
                 wall: Callable[[], float] = time.time, learn: LearnSettings = DEFAULT_LEARN,
                 write_learned: LearnedWriter | None = None) -> None:
        self.policy = policy
        self.directory = directory
        self.timing = timing = timing or Timing()
        self._clock = clock
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._io = io
        self._held: list[Any] = []  # switch events read while a batch was being applied
        self._pumped = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._turned = time.monotonic()  # when the loop last came round (other threads read it)
        self.started_at = clock()
        self.started_wall = wall()
        self._expiry_due = clock() + timing.expiry_check_s
        self._counters_due = clock() + min(timing.counters_s, COUNTERS_CHECK_S)
        self.released = False
        self.saved = saved
        self.fleet = Fleet(directory, wall)
        self.wall = wall
        self.endpoints = EndpointResolver(directory, learn)
        self.learner = Learner(learn, wall, clock)
        self.moves = Moves(clock)
        self._write_learned = write_learned
        self.work = Work(directory, tunnels)
        self.reconcilers: dict[int, Reconciler] = {}  # by datapath id: one per connected switch
        self.packet_ins = 0
        self.punts = {"learn": 0, "activate": 0, "other": 0}  # packet-ins taken, by kind
        self.reloads = {"applied": 0, "unchanged": 0, "refused": 0}
        self.stats = EngineStats()
        self.gc = GcPolicy()

    # --- threading ------------------------------------------------------------------------

    def post(self, event: Event | None) -> None:
        self._queue.put(event)
        if self._io is not None:
            self._io.wake()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dove-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.post(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def view(self, section: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """What the controller knows (ryu_dove.northbound.views), built on the engine
        thread; one section only if named: at a thousand hypervisors the tunnel list alone
        is a million entries, and the engine does nothing else while it builds."""
        reply: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        self.post(ViewRequest(reply, section))
        return reply.get(timeout=timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def health(self) -> str | None:
        """None while the engine's thread runs and comes round; otherwise what is wrong.
        Asked from other threads (the API, the process's watchdog): reads two values."""
        if self._thread is None:
            return None  # not started (tests drive handle_batch themselves)
        if not self._thread.is_alive():
            return "the engine's thread has stopped"
        stuck = time.monotonic() - self._turned
        if stuck > STALL_S:
            return f"the engine has not finished a batch for {stuck:.0f} s"
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._turned = time.monotonic()
            try:
                batch = self._next_batch()
            except Exception:  # the switch sockets failed us: log, breathe, go on
                LOG.exception("engine: failed to read events")
                self._stop.wait(self.timing.tick_s)
                continue
            started = time.perf_counter()
            try:
                self.handle_batch(batch)
            except Exception:  # one bad event must not stop the controller
                LOG.exception("engine: failed to process %d events", len(batch))
            if batch:
                self.stats.add(len(batch), time.perf_counter() - started)
            self.gc.after_batch(len(batch))

    def _next_batch(self) -> list[Any]:
        if self._io is None:
            try:
                first = self._queue.get(timeout=self.timing.tick_s)
            except queue.Empty:
                return []
            return self._drain([first] if first is not None else [])
        held, self._held = self._held, []
        idle = not held and self._queue.empty()
        batch = held + self._io.poll(self.timing.tick_s if idle else 0.0)
        self._pumped = time.perf_counter()
        return self._drain(batch)

    def _drain(self, batch: list[Any]) -> list[Any]:
        """Add what is queued, up to MAX_BATCH events (None only wakes the thread)."""
        while len(batch) < MAX_BATCH:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                batch.append(event)
        return batch

    def _pump(self) -> None:
        """In a long batch (a thousand reports, every switch programmed after a restart),
        flush the sockets and answer echoes now and then; what the switches said waits for
        the next batch."""
        if self._io is not None and time.perf_counter() - self._pumped > PUMP_S:
            self._held.extend(self._io.poll(0.0))
            self._pumped = time.perf_counter()

    # --- one cycle ------------------------------------------------------------------------

    def handle_batch(self, events: list[Any]) -> None:
        """Apply events, then recompute what they touched (public for tests)."""
        for event in events:
            try:
                self._handle(event)
            except Exception:  # one event's failure must not cost the rest of the batch
                LOG.exception("engine: failed to handle %s", type(event).__name__)
            self._pump()
        for name in self.learner.mute_changes():
            if name in self.fleet.reports:
                self._resolve(name)
        self._expire()
        self._read_counters()
        self._maybe_release()
        if self.released:
            self.work.apply(self.policy, self.reconcilers, self._pump, hold=self.fleet.stale)
        self._save()

    def _handle(self, event: Event) -> None:
        match event:
            case OvsdbReport(report):
                self._on_report(report)
            case OvsdbGone(conn):
                self.fleet.connection_lost(conn)
                self._retry_refused()
            case SwitchUp(dp):
                self._on_switch_up(dp)
            case SwitchDown(dp):
                self._on_switch_down(dp)
            case SwitchMessage():
                self._on_switch_message(event)
            case NewPolicy(policy):
                self._on_policy(policy)
            case PolicyRefused():
                self.reloads["refused"] += 1
            case ViewRequest(reply, section):
                reply.put(views.build(self, section))

    # --- hypervisors and their endpoints -------------------------------------------------

    def restore(self, records: list[SavedHypervisor]) -> None:
        """Take the records saved before a restart, as stale reports (before start())."""
        for record in records:
            change = self.fleet.restore(record)
            if change is not None:
                self.work.hypervisor_changed(change)
                self._resolve(change.name)
        if records:
            LOG.info("restored %d hypervisors from %s (stale until they report)",
                     len(self.fleet.stale), self.saved.dir if self.saved else "saved state")

    def _on_report(self, report: HypervisorReport) -> None:
        left = self.fleet.leaving(report)
        if left is not None:
            self._remove(left, "left: its OVSDB no longer names it (dove-join --leave)")
            return
        was_stale = report.name in self.fleet.stale
        change = self.fleet.accept(report)
        if change is not None:
            self.work.hypervisor_changed(change)
            if was_stale:  # its switch was held: program it now, its tunnels known
                self.work.whole(change.name)
            self._resolve(change.name)
            if change.new.dpid is not None and change.new is not change.old:
                self._check_identity(change.new.dpid)

    def _retry_refused(self) -> None:
        """A claim was released: reports refused for claiming it may be taken now."""
        for report in self.fleet.claims.waiting():
            self._on_report(report)

    def _resolve(self, name: str, depth: int = 0) -> None:
        """Re-derive one hypervisor's endpoints; re-check refusals its changes may lift."""
        ports = self.learner.ports(name, self.fleet.ports[name].vm_ports)
        for port in self.learner.landed(name):
            self._write(name, port, None)  # in its OVSDB now, or gone: no more to write
        before = self.directory.endpoints_on(name)
        changed = self.endpoints.resolve(self.policy, name, ports, self.learner.muted(name),
                                         self.moves.active_at)
        if not changed:
            return
        after = self.directory.endpoints_on(name)
        self.work.own(name, changed)
        for net in changed:
            self.work.network(net)
        for ep in self.moves.announce(name, before, after):
            self._announce(ep)
        self.moves.settle(self.directory)  # before the cascade: standby ports may bind now
        if depth < 3:  # a lifted conflict can only cascade a few steps
            others = set(self.endpoints.refused_elsewhere(name)) | self.moves.waiting(
                self.directory, name, before, after)
            for other in sorted(others):
                if other in self.fleet.reports:
                    self._resolve(other, depth + 1)

    def _read_counters(self) -> None:
        """Every switch's rule flows' packet counts (dove_rule_packets), each switch once per
        counters_s, spread over that time: a thousand replies at once would hold up the
        events behind them. Looked at twice a second."""
        now = self._clock()
        if now < self._counters_due or not self.released:
            return
        self._counters_due = now + COUNTERS_CHECK_S
        period = self.timing.counters_s
        for dpid, rec in self.reconcilers.items():
            slot = (dpid * 2654435761 % 1000) / 1000 * period  # a fixed place in the period
            if (now - slot) // period > (rec.counters_read_at - slot) // period:
                rec.counters_read_at = now
                rec.ask_counters(Stage.IN_ACL_STATE.table)

    def _expire(self) -> None:
        now = self._clock()
        if now < self._expiry_due:
            return
        self._expiry_due = now + self.timing.expiry_check_s
        for name, silent in self.fleet.expired(self.timing.expiry_s, self.connected,
                                               self.started_wall):
            self._remove(name, f"expired: not heard for {silent:.0f} s")

    def _remove(self, name: str, why: str) -> None:
        LOG.warning("hypervisor %s removed (%s): its endpoints and tunnels go", name, why)
        self.endpoints.forget(name)
        for net in self.fleet.remove(name):
            self.work.network(net)
        self.work.tunnels = True
        self.work.forget_unused(self.policy)
        self._retry_refused()

    def connected(self, name: str) -> bool:
        """Heard now: over OVSDB or OpenFlow."""
        return self.fleet.ovsdb_connected(name) or self.switch_of(name) is not None

    def switch_of(self, name: str) -> Reconciler | None:
        hv = self.directory.hypervisor(name)
        return self.reconcilers.get(hv.dpid) if hv and hv.dpid is not None else None

    def _save(self) -> None:
        """Hand the records that changed to the saved state's thread."""
        for name, record in self.fleet.changed_records(self.connected):
            if self.saved is not None:
                self.saved.put(name, record)

    def _on_policy(self, policy: Policy) -> None:
        if policy == self.policy:
            LOG.info("policy reloaded: no change")
            self.reloads["unchanged"] += 1
            return
        self.reloads["applied"] += 1
        LOG.info("policy reloaded from %s", ", ".join(policy.sources))
        self.policy = policy
        self.endpoints.policy_changed()
        for name in list(self.fleet.reports):
            self._resolve(name)
        self.work.everything()
        self.work.forget_unused(policy)

    # --- switches -------------------------------------------------------------------------

    def _on_switch_up(self, dp: Any) -> None:
        known = self.fleet.name_of_dpid(dp.id)
        if self._impostor(dp, known):
            return  # the switch that holds the datapath id keeps its connection
        name = known or f"dpid {dp.id:016x}"
        LOG.info("switch %s connected (OpenFlow)", name)
        replaced = self.reconcilers.get(dp.id)
        if replaced is not None and replaced.dp is not dp:
            # The switch reconnected, so the old connection is dead even if TCP has not
            # noticed (a partition, a crashed host): do not wait for the echo probe.
            replaced.dp.close("replaced by a new connection from the same switch")
        rec = Reconciler(name, dp)
        rec.hold = not self.released
        rec.counters_read_at = self._clock()  # its first counter read comes in its turn
        self.reconcilers[dp.id] = rec
        rec.start()
        if known:
            self.work.whole(name)

    def _impostor(self, dp: Any, owner: str | None) -> bool:
        """A switch whose certificate names another hypervisor than the one that reports
        its datapath id is closed (over TLS; a plain connection has no name to check)."""
        if dp.identity is None or owner is None or dp.identity == owner:
            return False
        dp.close(f"its certificate is for {dp.identity}, but datapath id {dp.id:016x} is "
                 f"{owner}'s")
        return True

    def _check_identity(self, dpid: int) -> None:
        """A datapath id was just bound to a hypervisor: a switch already connected with
        it must be that hypervisor."""
        rec = self.reconcilers.get(dpid)
        if rec is not None and self._impostor(rec.dp, self.fleet.name_of_dpid(dpid)):
            del self.reconcilers[dpid]

    def _on_switch_down(self, dp: Any) -> None:
        rec = self.reconcilers.get(dp.id)
        if rec is None or rec.dp is not dp:
            return  # an old connection of a switch that has reconnected since
        del self.reconcilers[dp.id]
        self.learner.forget_switch(dp.id)
        LOG.warning("switch %s disconnected (OpenFlow); its flows stay installed", rec.name)
        name = self.fleet.name_of_dpid(dp.id)
        if name is not None:
            self.fleet.went_quiet(name)

    def _on_switch_message(self, ev: SwitchMessage) -> None:
        if ev.kind is MessageKind.PACKET_IN:
            self.packet_ins += 1
        rec = self.reconcilers.get(ev.dpid)
        if rec is None or ev.msg.datapath is not rec.dp:
            return  # a late answer on a connection the switch has since replaced
        if ev.kind is MessageKind.PACKET_IN:
            self._on_punt(ev.dpid, ev.msg)
        elif ev.kind is MessageKind.FLOW_REMOVED:
            self._on_flow_removed(rec, ev.dpid, ev.msg)
        elif ev.kind is MessageKind.FLOW_STATS:
            rec.on_flow_stats(ev.msg)
        elif ev.kind is MessageKind.BUNDLE:
            rec.on_bundle_reply(ev.msg)
        elif ev.kind is MessageKind.BARRIER:
            rec.on_barrier_reply(ev.msg)
        elif ev.kind is MessageKind.ERROR and not rec.on_error(ev.msg):
            LOG.error("%s: OpenFlow error type=%s code=%s for xid %s", rec.name, ev.msg.type,
                      ev.msg.code, ev.msg.xid)

    # --- the startup grace ----------------------------------------------------------------

    def _maybe_release(self) -> None:
        if self.released:
            return
        waited = self._clock() - self.started_at
        if waited < self.timing.min_grace_s:
            return
        reports = self.fleet.reports
        if not reports and waited < self.timing.max_grace_s:
            return  # knowing nothing yet: switches reconnect with backoff after a restart
        missing = self.fleet.unheard()
        unread = [r.name for r in self.reconcilers.values() if r.phase is Phase.DUMPING]
        if (missing or unread) and waited < self.timing.max_grace_s:
            return
        if missing:
            LOG.warning("starting without hypervisors %s: not heard from in %.0f s",
                        sorted(missing), waited)
        LOG.info("controller synchronised after %.1f s: %d hypervisors, %d endpoints",
                 waited, len(reports),
                 sum(len(self.directory.endpoints_on(n)) for n in reports))
        self.released = True
        self.work.tunnels = True
        self.work.everything()
        for rec in self.reconcilers.values():
            rec.release()
