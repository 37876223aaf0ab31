"""The controller's core: one thread that owns the policy, the directory and every switch.

OVSDB reports and API requests arrive as events on one queue (posted from the OVSDB
manager's and the API's threads); OpenFlow events come from the switch connections, which
this thread runs itself (ryu_dove.openflow.server: it waits on their sockets and the queue at once).
The engine applies a batch of events, recomputes the desired state of only the hypervisors
the batch touched, and hands it to the reconcilers (flows, written straight to the switch
sockets) and the OVSDB manager (tunnel ports). Nothing else mutates controller state.

Restart safety: after a (re)start the engine changes no switch and no tunnel until it has
heard from at least one hypervisor and from every hypervisor that the reporting hypervisors'
own tunnel ports name (or a deadline passes), so a restart never deletes flows or tunnels of
hypervisors it simply has not heard from yet.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, TunnelSpec
from ryu_dove.directory import Directory, Endpoint, Hypervisor, bindings
from ryu_dove.directory.ports import PortSplit
from ryu_dove.engine.gc_policy import GcPolicy
from ryu_dove.northbound import views as snapshot
from ryu_dove.openflow.reconciler import Reconciler
from ryu_dove.pipeline.compiler import Compiler
from ryu_dove.policy import Policy
from ryu_dove.tunnel_ids import tunnel_port_name

LOG = logging.getLogger(__name__)

TunnelWriter = Callable[[str, Mapping[str, TunnelSpec]], None]
PUMP_S = 0.05  # during a long batch, serve the switch sockets this often


class SwitchIO(Protocol):
    """The switch connections the engine's thread runs (ryu_dove.openflow.server.OpenFlowServer)."""

    def poll(self, timeout: float) -> list[Any]: ...
    def wake(self) -> None: ...


@dataclass
class EngineStats:
    batches: int = 0
    events: int = 0
    busy_s: float = 0.0  # wall time spent applying batches and recomputing
    longest_s: float = 0.0


@dataclass(frozen=True)
class Timing:
    min_grace_s: float = 1.0  # always wait this long after start before changing switches
    max_grace_s: float = 30.0  # stop waiting for silent hypervisors after this long
    hold_down_s: float = 15.0  # a hypervisor gone from OVSDB and OpenFlow this long is removed
    tick_s: float = 0.25


# --- events (posted from other threads) --------------------------------------------------

@dataclass(frozen=True)
class OvsdbReport:
    report: HypervisorReport


@dataclass(frozen=True)
class OvsdbGone:
    conn: str


@dataclass(frozen=True)
class SwitchUp:
    dp: Any


@dataclass(frozen=True)
class SwitchDown:
    dp: Any  # the connection that ended: a reconnected switch has a new one already


@dataclass(frozen=True)
class SwitchMessage:
    dpid: int
    kind: str  # "flow_stats", "bundle", "barrier", "error", "packet_in"
    msg: Any


@dataclass(frozen=True)
class NewPolicy:
    policy: Policy


@dataclass(frozen=True)
class SnapshotRequest:
    reply: queue.Queue[dict[str, Any]]
    section: str | None = None  # one of snapshot.SECTIONS; None: all of them


class Engine:
    def __init__(self, policy: Policy, directory: Directory, tunnels: TunnelWriter,
                 timing: Timing = Timing(), clock: Callable[[], float] = time.monotonic,
                 io: SwitchIO | None = None) -> None:
        self.policy = policy
        self.directory = directory
        self._write_tunnels = tunnels
        self.timing = timing
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue()
        self._io = io
        self._held: list[Any] = []  # switch events read while a batch was being applied
        self._pumped = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.started_at = clock()
        self.released = False
        self.reports: dict[str, HypervisorReport] = {}
        self._conn_hv: dict[str, str] = {}
        self._gone_since: dict[str, float] = {}
        self.switches: dict[int, Reconciler] = {}
        self.refused: dict[str, list[bindings.Refusal]] = {}  # only hypervisors with refusals
        self.compiler = Compiler()
        self._expected: dict[str, frozenset[str]] = {}  # hypervisor -> remotes its tunnels name
        self._named: collections.Counter[str] = collections.Counter()  # remote -> how many name it
        self._dpid_hv: dict[int, str] = {}
        self._tep_hv: dict[str, str] = {}  # TEP -> the hypervisor that has it
        self._tep_conflicts: dict[str, str] = {}  # ignored hypervisor -> who has its TEP
        self._port_memo: dict[str, bindings.PortMemo] = {}  # per hypervisor, this policy
        self._ports: dict[str, PortSplit] = {}  # each hypervisor's last report, split
        self.packet_ins = 0
        self.stats = EngineStats()
        self.gc = GcPolicy()
        # hypervisor -> the networks whose change it must follow; None: recompute it whole
        self._dirty_flows: dict[str, set[str] | None] = {}
        self._dirty_local: set[str] = set()  # hypervisors whose own endpoints changed
        self._dirty_tunnels = False

    # --- threading ------------------------------------------------------------------------

    def post(self, event: Any) -> None:
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

    def snapshot(self, section: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """What the controller knows (ryu_dove.northbound.views), built on the engine thread; one
        section only if named: at a thousand hypervisors the tunnel list alone is a million
        entries, and the engine does nothing else while it builds."""
        reply: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        self.post(SnapshotRequest(reply, section))
        return reply.get(timeout=timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set():
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
            took = time.perf_counter() - started
            if batch:
                self._account(len(batch), took)
            self.gc.after_batch(len(batch))

    def _account(self, events: int, seconds: float) -> None:
        s = self.stats
        s.batches += 1
        s.events += events
        s.busy_s += seconds
        s.longest_s = max(s.longest_s, seconds)

    def _next_batch(self) -> list[Any]:
        if self._io is not None:
            return self._next_batch_with_switches(self._io)
        try:
            batch = [self._queue.get(timeout=self.timing.tick_s)]
        except queue.Empty:
            return []
        while len(batch) < 10000:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [e for e in batch if e is not None]

    def _next_batch_with_switches(self, io: SwitchIO) -> list[Any]:
        held, self._held = self._held, []
        idle = not held and self._queue.empty()
        batch = held + io.poll(self.timing.tick_s if idle else 0.0)
        self._pumped = time.perf_counter()
        while len(batch) < 10000:
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
            self._handle(event)
            self._pump()
        self._expire_gone()
        self._maybe_release()
        self._recompute()

    def _handle(self, event: Any) -> None:
        if isinstance(event, OvsdbReport):
            self._on_report(event.report)
        elif isinstance(event, OvsdbGone):
            self._on_ovsdb_gone(event.conn)
        elif isinstance(event, SwitchUp):
            self._on_switch_up(event.dp)
        elif isinstance(event, SwitchDown):
            self._on_switch_down(event.dp)
        elif isinstance(event, SwitchMessage):
            self._on_switch_message(event)
        elif isinstance(event, NewPolicy):
            self._on_policy(event.policy)
        elif isinstance(event, SnapshotRequest):
            event.reply.put(snapshot.build(self, event.section))

    def _on_report(self, report: HypervisorReport) -> None:
        name = report.name
        if not name or not report.tep_ip:
            LOG.warning("OVSDB %s has no %s/%s: run dove-join on that hypervisor", report.conn,
                        contract.HYPERVISOR, contract.TEP_IP)
            return
        holder = self._tep_hv.get(report.tep_ip, name)
        if holder != name:
            # Two hypervisors on one TEP would share a tunnel port name and a remote key: their
            # traffic would go to either. The first keeps it; the other is ignored until fixed.
            if self._tep_conflicts.get(name) != holder:
                LOG.error("hypervisor %s (OVSDB %s) reports TEP %s, which %s uses: ignored "
                          "until its %s changes", name, report.conn, report.tep_ip, holder,
                          contract.TEP_IP)
            self._tep_conflicts[name] = holder
            return
        self._tep_conflicts.pop(name, None)
        self._conn_hv[report.conn] = name
        self._gone_since.pop(name, None)
        self.reports[name] = report
        ports = self._ports.setdefault(name, PortSplit())
        _, tunnels_moved = ports.update(report.ports)
        self._set_expected(name, ports.remotes)
        old = self.directory.hypervisor(name)
        if (old is not None and old.tep_ip == report.tep_ip and old.dpid == report.dpid
                and (not tunnels_moved or old.tunnels == ports.ofports)):
            hv = old  # the usual case: a VM port changed; keep the record (and its identity)
        else:
            hv = Hypervisor(name, report.tep_ip, report.dpid,
                            MappingProxyType(dict(sorted(ports.ofports.items()))))
        if old is None or old.tep_ip != hv.tep_ip:
            LOG.info("hypervisor %s joined with TEP %s", name, hv.tep_ip)
            self._dirty_tunnels = True
        if old != hv:
            self.directory.put_hypervisor(hv)
            if old is not None:
                self._tep_hv.pop(old.tep_ip, None)
            self._tep_hv[hv.tep_ip] = name
            self._dirty_whole(name)
            if old is not None and old.tep_ip != hv.tep_ip:  # peers name it by its TEP
                for net in self.directory.networks_on(name):
                    self._dirty_network(net)
            if old is not None and old.dpid is not None:
                self._dpid_hv.pop(old.dpid, None)
            if hv.dpid is not None:
                self._dpid_hv[hv.dpid] = name
        self._resolve(name)

    def _resolve(self, name: str, depth: int = 0) -> None:
        """Re-derive one hypervisor's endpoints; re-check refusals its changes may lift."""
        memo = self._port_memo.setdefault(name, {})
        endpoints, refused = bindings.resolve(self.policy, self.directory, name,
                                              self._ports[name].vm_ports, memo)
        before = {e.port: e for e in self.directory.endpoints_on(name)}
        changed = self.directory.replace_endpoints(name, endpoints)
        self._log_endpoint_changes(name, before, {e.port: e for e in endpoints})
        self._log_refusals(name, refused)
        if refused:
            self.refused[name] = refused
        else:
            self.refused.pop(name, None)
        if not changed:
            return
        self._dirty_own(name, changed)
        for net in changed:
            self._dirty_network(net)
        if depth < 3:  # a lifted conflict can only cascade a few steps
            for other, refusals in list(self.refused.items()):
                if other != name and refusals and other in self.reports:
                    self._resolve(other, depth + 1)

    def _on_ovsdb_gone(self, conn: str) -> None:
        name = self._conn_hv.pop(conn, None)
        if name is not None and name not in self._conn_hv.values():
            LOG.warning("OVSDB connection of %s lost (%s)", name, conn)
            self._gone_since[name] = self._clock()

    def _expire_gone(self) -> None:
        now = self._clock()
        for name, since in list(self._gone_since.items()):
            hv = self.directory.hypervisor(name)
            if hv is not None and hv.dpid in self.switches:
                continue  # OpenFlow still up: only OVSDB flapped
            if now - since < self.timing.hold_down_s:
                continue
            del self._gone_since[name]
            LOG.info("hypervisor %s left (no OVSDB or OpenFlow for %.0f s)", name, now - since)
            self.reports.pop(name, None)
            self.refused.pop(name, None)
            self._set_expected(name, frozenset())
            self._port_memo.pop(name, None)
            self._ports.pop(name, None)
            if hv is not None and hv.dpid is not None:
                self._dpid_hv.pop(hv.dpid, None)
            if hv is not None:
                self._tep_hv.pop(hv.tep_ip, None)
            for net in self.directory.remove_hypervisor(name):
                self._dirty_network(net)
            self._dirty_tunnels = True
            self._forget_unused_parts()

    def _on_switch_up(self, dp: Any) -> None:
        name = self._hv_of_dpid(dp.id) or f"dpid {dp.id:016x}"
        LOG.info("switch %s connected (OpenFlow)", name)
        replaced = self.switches.get(dp.id)
        if replaced is not None and replaced.dp is not dp and hasattr(replaced.dp, "close"):
            # The switch reconnected, so the old connection is dead even if TCP has not
            # noticed (a partition, a crashed host): do not wait for the echo probe.
            replaced.dp.close("replaced by a new connection from the same switch")
        rec = Reconciler(name, dp)
        rec.hold = not self.released
        self.switches[dp.id] = rec
        rec.start()
        if self._hv_of_dpid(dp.id):
            self._dirty_whole(name)

    def _on_switch_down(self, dp: Any) -> None:
        rec = self.switches.get(dp.id)
        if rec is None or rec.dp is not dp:
            return  # an old connection of a switch that has reconnected since
        del self.switches[dp.id]
        LOG.warning("switch %s disconnected (OpenFlow); its flows stay installed", rec.name)

    def _on_switch_message(self, ev: SwitchMessage) -> None:
        if ev.kind == "packet_in":
            self.packet_ins += 1
            return
        rec = self.switches.get(ev.dpid)
        if rec is None or getattr(ev.msg, "datapath", rec.dp) is not rec.dp:
            return  # a late answer on a connection the switch has since replaced
        if ev.kind == "flow_stats":
            rec.on_flow_stats(ev.msg)
        elif ev.kind == "bundle":
            rec.on_bundle_reply(ev.msg)
        elif ev.kind == "barrier":
            rec.on_barrier_reply(ev.msg)
        elif ev.kind == "error" and not rec.on_error(ev.msg):
            LOG.error("%s: OpenFlow error type=%s code=%s for xid %s", rec.name, ev.msg.type,
                      ev.msg.code, ev.msg.xid)

    def _on_policy(self, policy: Policy) -> None:
        if policy == self.policy:
            LOG.info("policy reloaded: no change")
            return
        LOG.info("policy reloaded from %s", ", ".join(policy.sources))
        self.policy = policy
        self._port_memo.clear()
        for name in list(self.reports):
            self._resolve(name)
        self._dirty_all()
        self._forget_unused_parts()

    def _forget_unused_parts(self) -> None:
        self.compiler.forget((n.key for n in self.policy.networks()),
                             (hv.name for hv in self.directory.hypervisors()))

    # --- desired state ------------------------------------------------------------------

    def _maybe_release(self) -> None:
        if self.released:
            return
        waited = self._clock() - self.started_at
        if waited < self.timing.min_grace_s:
            return
        if not self.reports and waited < self.timing.max_grace_s:
            return  # knowing nothing yet: switches reconnect with backoff after a restart
        missing = {n for n in self._named if n not in self.reports}
        unread = [r.name for r in self.switches.values() if r.phase.value == "dumping"]
        if (missing or unread) and waited < self.timing.max_grace_s:
            return
        if missing:
            LOG.warning("starting without hypervisors %s: not heard from in %.0f s",
                        sorted(missing), waited)
        LOG.info("controller synchronised after %.1f s: %d hypervisors, %d endpoints",
                 waited, len(self.reports),
                 sum(len(self.directory.endpoints_on(n)) for n in self.reports))
        self.released = True
        self._dirty_tunnels = True
        self._dirty_all()
        for rec in self.switches.values():
            rec.hold = False

    def _set_expected(self, name: str, remotes: frozenset[str]) -> None:
        """Keep count of who names whom: a thousand reports each naming 999 others must not
        cost a million set operations per batch while the engine waits for them."""
        old = self._expected.get(name, frozenset())
        if old is remotes or old == remotes:
            return
        self._named.subtract(old - remotes)
        self._named.update(remotes - old)
        for gone in old - remotes:
            if self._named[gone] <= 0:
                del self._named[gone]
        if remotes:
            self._expected[name] = remotes
        else:
            self._expected.pop(name, None)

    def _recompute(self) -> None:
        if not self.released:
            return
        if self._dirty_tunnels:
            self._dirty_tunnels = False
            everyone = self._all_tunnels()
            for hv in self.directory.hypervisors():
                self._write_tunnels(hv.name, {port: spec for port, spec in everyone.items()
                                              if spec.remote != hv.name})
        dirty, self._dirty_flows = self._dirty_flows, {}
        local, self._dirty_local = self._dirty_local, set()
        connected, work = {}, {}
        for name in sorted(dirty):
            known = self.directory.hypervisor(name)
            rec = self.switches.get(known.dpid) if known and known.dpid is not None else None
            if rec is not None:
                connected[name], work[name] = rec, dirty[name]
        for name, flows, changed in self.compiler.switches(self.policy, self.directory, work,
                                                           local):
            rec = connected[name]
            rec.name = name
            if rec.desired is not flows.flows:
                rec.set_desired(flows.flows)  # a new connection: diff everything
            elif changed:
                rec.changed(changed)
            self._pump()

    def _dirty_whole(self, name: str) -> None:
        self._dirty_flows[name] = None

    def _dirty_own(self, name: str, networks: set[str]) -> None:
        """`name`'s own endpoints changed, in these networks (some it may have just left)."""
        current = self._dirty_flows.setdefault(name, set())
        if current is not None:
            current.update(networks)
            self._dirty_local.add(name)

    def _dirty_network(self, net: str) -> None:
        """Every hypervisor hosting `net` follows its change."""
        for name in self.directory.hosting(net):
            networks = self._dirty_flows.setdefault(name, set())
            if networks is not None:
                networks.add(net)

    def _dirty_all(self) -> None:
        self._dirty_flows = dict.fromkeys(hv.name for hv in self.directory.hypervisors())

    def _all_tunnels(self) -> dict[str, TunnelSpec]:
        """Every hypervisor's tunnel port, by name: each other hypervisor has all but its own."""
        return {tunnel_port_name(hv.tep_ip): TunnelSpec(hv.tep_ip, hv.name)
                for hv in self.directory.hypervisors()}

    def ovsdb_connected(self, name: str) -> bool:
        return name in self._conn_hv.values()

    def _hv_of_dpid(self, dpid: int) -> str | None:
        return self._dpid_hv.get(dpid)

    # --- telling the operator -----------------------------------------------------------

    def _log_endpoint_changes(self, hv: str, before: dict[str, Endpoint],
                              after: dict[str, Endpoint]) -> None:
        for port in before.keys() - after.keys():
            e = before[port]
            LOG.info("endpoint %s %s %s left %s port %s", e.network, e.mac, ",".join(e.ips),
                     hv, port)
        for port, e in after.items():
            if before.get(port) != e:
                LOG.info("endpoint %s %s %s on %s port %s", e.network, e.mac, ",".join(e.ips),
                         hv, port)

    def _log_refusals(self, hv: str, refused: list[bindings.Refusal]) -> None:
        old = {(r.port, r.reason) for r in self.refused.get(hv, [])}
        for r in refused:
            if (r.port, r.reason) not in old:
                LOG.warning("binding refused on %s port %s (iface %s): %s", hv, r.port,
                            r.iface_id or "-", r.reason)
