"""The controller's OVSDB manager: every hypervisor's ovsdb-server connects here.

dove-join points each hypervisor's OVSDB manager at tcp:CONTROLLER:6640, so hypervisors
connect out to us. OvsdbManager listens there and serves all of them from ONE thread: a
python-ovs IDL (a replica of the hypervisor's database) per accepted connection, all driven
by one selector loop (epoll on Linux). It hands the controller an immutable HypervisorReport
after every change, and keeps the tunnel ports it owns on each br-int equal to what the
controller asked for.
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ovsdb_agent import contract
from ovsdb_agent.idl_session import (
    VSWITCH_SCHEMA,
    adopt_stream,
    disconnect_reason,
    idl_schema_json,
    probe_expired,
)
from ovsdb_agent.listener import Listener, OvsdbListenError, peer_name
from ovsdb_agent.peer import OvsdbConnection
from ovsdb_agent.peerlog import RateLimit
from ovsdb_agent.reactor import Reactor, Waker, Wants
from ovsdb_agent.reports import HypervisorReport, TunnelSpec
from ovsdb_agent.tls_accept import TlsHandshakes
from ovsdb_agent.tunnel_ports import check_spec, touched_tunnels
from ovsdb_agent.tunnel_writer import WriterElection

__all__ = ["OvsdbListenError", "OvsdbManager"]

LOG = logging.getLogger(__name__)

MAX_CONNECTIONS = 4096  # in all; more are closed as soon as they are accepted
MAX_UNREPORTED = 2048  # not yet reporting: above the fleet, which reconnects at once after a
# controller restart
ACCEPT_PAUSE_MS = 1000.0  # after e.g. EMFILE: a listener that stays readable would spin
_LISTENER = -1  # reactor parties that are not hypervisor connections
_WAKER = -2


# --- the manager ----------------------------------------------------------------------------

class OvsdbManager:
    """Listens for hypervisors' OVSDB connections and serves them all from one thread.

    on_report and on_disconnect run on the manager thread and must be cheap (enqueue).
    """

    def __init__(self, listen: str, on_report: Callable[[HypervisorReport], None],
                 on_disconnect: Callable[[str], None], probe_interval_ms: int = 5000,
                 *, schema_path: str = VSWITCH_SCHEMA, tls: ssl.SSLContext | None = None,
                 ) -> None:
        """`listen`: ptcp:PORT[:IP], punix:PATH, or pssl:PORT[:IP] with `tls` (hypervisors
        must then present a certificate that context accepts, and are named by it)."""
        self.listen = listen
        self._tls = tls
        self._handshakes: TlsHandshakes | None = None
        self._on_report = on_report
        self._on_disconnect = on_disconnect
        self._probe_interval_ms = probe_interval_ms
        self._schema_path = schema_path
        self._lock = threading.Lock()  # guards _pending, shared with callers
        self._pending: dict[str, dict[str, TunnelSpec]] = {}
        self._learned_pending: dict[str, dict[str, str | None]] = {}
        self._waker: Waker | None = None  # callers wake() it; the thread waits for it
        # Everything below belongs to the manager thread once start() returns.
        self._desired: dict[str, dict[str, TunnelSpec]] = {}  # sticky, by hypervisor name
        self._learned: dict[str, dict[str, str]] = {}  # hypervisor -> interface -> value
        self._conns: dict[int, OvsdbConnection] = {}
        self._election = WriterElection(self._wake_soon)  # by the names connections report
        self._parties = itertools.count(1)
        self._seq = itertools.count(1)  # numbers unix peers' names
        self._txn_ids = itertools.count(1)
        self._schema_json: Any = None
        self._listener: Listener | None = None
        self._reactor: Reactor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._log = RateLimit(LOG)  # accept failures and refusals: a flood must not flood logs
        self.refused_connections = 0
        self._unreported = 0  # in this accept round: connections that have not reported yet

    def start(self) -> None:
        """Bind and start serving; raises OvsdbListenError here (OSError: no schema file)."""
        if self._thread is not None:
            raise RuntimeError("OvsdbManager already started")
        self._schema_json = idl_schema_json(self._schema_path)  # once; IDLs only read it
        self._listener = Listener(self.listen)
        self._waker = Waker()
        self._reactor = Reactor()
        self._reactor.arm(_LISTENER, Wants.readable(self._listener.fileno()))
        self._reactor.arm(_WAKER, Wants.readable(self._waker.fd))
        if self._tls is not None:
            self._handshakes = TlsHandshakes(self._tls, self._reactor,
                                             lambda: next(self._parties), self._tls_failed)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ovsdb-manager", daemon=True)
        self._thread.start()
        LOG.info("OVSDB manager listening on %s", self.listen)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread and close every connection; no callbacks fire for them."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            LOG.warning("OVSDB manager thread did not stop within %.0f s", timeout)
            return
        if self._waker is not None:
            self._waker.close()
        self._thread = None

    def set_tunnels(self, hypervisor: str, desired: Mapping[str, TunnelSpec]) -> None:
        """Make br-int's owned tunnel ports of that hypervisor exactly `desired` (port name ->
        spec). Thread-safe; remembered by name and applied to whichever connection reports
        that name, now and after every reconnect."""
        wanted = dict(desired)
        for port, spec in wanted.items():
            check_spec(port, spec)
        with self._lock:
            self._pending[hypervisor] = wanted
        self._wake()

    def set_learned(self, hypervisor: str, values: Mapping[str, str | None]) -> None:
        """Make these VM interfaces of that hypervisor carry these dove-learned-ips values
        (None: stop keeping that interface's). Thread-safe; sticky like set_tunnels."""
        with self._lock:
            self._learned_pending.setdefault(hypervisor, {}).update(values)
        self._wake()

    # -- thread plumbing

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:  # before start(), the first round takes what is pending
            waker.wake()

    def _wake_soon(self, party: int) -> None:
        assert self._reactor is not None
        self._reactor.wake_soon(party)

    def _run(self) -> None:
        assert self._reactor is not None
        try:
            while not self._stopping:
                self._round(self._reactor.poll())
        except Exception:
            LOG.exception("OVSDB manager failed; hypervisors' OVSDB is no longer served")
            for conn in list(self._conns.values()):
                self._drop(conn, "OVSDB manager failed")
        finally:
            self._close_all()

    def _round(self, ready: set[int]) -> None:
        """One loop round: run the connections that have something to do, then re-arm."""
        if _WAKER in ready:
            assert self._waker is not None
            self._waker.drain()
        ready |= self._take_desired() | self._take_learned()
        if _LISTENER in ready:
            ready |= self._accept()
        for party in ready:
            if self._handshakes is not None and party in self._handshakes:
                self._tls_step(party)
                continue
            conn = self._conns.get(party)
            if conn is not None:
                self._service(conn)

    def _take_desired(self) -> set[int]:
        with self._lock:
            pending, self._pending = self._pending, {}
        touched: set[int] = set()
        for name, desired in pending.items():
            before = self._desired.get(name)
            if before == desired:
                continue  # the controller restates every hypervisor's set when one changes
            self._desired[name] = desired
            changed = None if before is None else {
                n for n in before.keys() | desired.keys() if before.get(n) != desired.get(n)}
            for party in self._election.parties(name):
                self._conns[party].tunnels.retry_now(changed)
                touched.add(party)
        return touched

    def _take_learned(self) -> set[int]:
        with self._lock:
            pending, self._learned_pending = self._learned_pending, {}
        touched: set[int] = set()
        for name, values in pending.items():
            kept = self._learned.setdefault(name, {})
            for iface, value in values.items():
                if value is None:
                    kept.pop(iface, None)
                else:
                    kept[iface] = value
            if not kept:
                del self._learned[name]
            for party in self._election.parties(name):
                self._conns[party].learned.look()
                touched.add(party)
        return touched

    def _accept(self) -> set[int]:
        assert self._reactor is not None and self._listener is not None
        accepted: set[int] = set()
        wants = Wants.readable(self._listener.fileno())
        # Counted once a round, not once a connection: a thousand reconnect at once.
        self._unreported = (sum(1 for c in self._conns.values() if c.report is None)
                            + len(self._handshakes or ()))
        error = self._listener.accept(lambda stream: self._take(stream, accepted))
        if error:
            self._log.log(logging.ERROR, "accept", "OVSDB manager on %s: cannot accept "
                          "connections: %s; pausing %.0f s", self.listen, os.strerror(error),
                          ACCEPT_PAUSE_MS / 1000)
            wants = Wants()
            wants.timer_wait(ACCEPT_PAUSE_MS)
        self._reactor.arm(_LISTENER, wants)
        return accepted

    def _take(self, stream: Any, accepted: set[int]) -> None:
        if len(self._conns) < MAX_CONNECTIONS and self._unreported < MAX_UNREPORTED:
            self._unreported += 1
            if self._handshakes is None:
                accepted.add(self._adopt(stream))
            elif done := self._handshakes.start(stream, self._peer(stream, "ssl")):
                tls_stream, identity = done  # (the handshake finished at once)
                accepted.add(self._adopt(tls_stream, tls_stream.name, identity))
            return
        self.refused_connections += 1
        stream.close()
        self._log.log(logging.WARNING, "refused", "OVSDB manager on %s: refused a connection: "
                      "%d connections, %d not reporting yet (limits %d and %d)", self.listen,
                      len(self._conns), self._unreported, MAX_CONNECTIONS, MAX_UNREPORTED)

    def _peer(self, stream: Any, kind: str = "tcp") -> str:
        try:
            return peer_name(stream.socket, next(self._seq), kind)
        except OSError:  # the peer left already; the IDL notices and drops it
            return f"{self.listen}#{next(self._seq)}"

    def _tls_step(self, party: int) -> None:
        assert self._handshakes is not None
        done = self._handshakes.step(party)
        if done is not None:
            stream, identity = done
            conn = self._conns[self._adopt(stream, stream.name, identity)]
            self._service(conn)  # its IDL sends its first requests now

    def _tls_failed(self, peer: str, why: str) -> None:
        self.refused_connections += 1
        self._log.log(logging.WARNING, "tls", "OVSDB connection %s refused: %s", peer, why)

    def _adopt(self, stream: Any, peer: str | None = None, identity: str | None = None) -> int:
        party = next(self._parties)
        peer = peer or self._peer(stream)
        idl = adopt_stream(stream, peer, self._schema_json, self._probe_interval_ms)
        self._conns[party] = OvsdbConnection(party, peer, idl, identity=identity)
        LOG.debug("OVSDB connection %s accepted on %s", peer, self.listen)
        return party

    def _service(self, conn: OvsdbConnection) -> None:
        try:
            probe_due = probe_expired(conn.session)
            rpc = conn.session.rpc
            conn.idl.run()
            if not conn.session.is_alive():
                self._drop(conn, disconnect_reason(rpc, probe_due))
                return
            self._check_txn(conn)
            self._report(conn)
            self._reconcile(conn)
            self._write_learned(conn)
            self._arm(conn)
        except Exception:
            conn.log.exception("internal error, dropping the connection")
            self._drop(conn, "internal error in the OVSDB manager")

    def _arm(self, conn: OvsdbConnection) -> None:
        assert self._reactor is not None
        wants = Wants()
        conn.idl.wait(wants)
        conn.tunnels.wait(wants)  # the end of a backoff after a failed transaction
        conn.learned.wait(wants)
        self._reactor.arm(conn.party, wants)

    def _drop(self, conn: OvsdbConnection, reason: str) -> None:
        assert self._reactor is not None
        if self._conns.pop(conn.party, None) is None:
            return
        self._reactor.forget(conn.party)  # before the socket closes: its number may be reused
        self._election.leave(conn.hypervisor, conn.party)
        conn.idl.close()
        if conn.report is None:
            LOG.info("OVSDB connection %s closed before its first report: %s", conn.peer, reason)
            return
        conn.log.info("disconnected: %s", reason)
        self._emit(self._on_disconnect, conn.peer)

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            if self._reactor is not None:
                self._reactor.forget(conn.party)
            conn.idl.close()
        self._conns.clear()
        self._election.clear()
        if self._handshakes is not None:
            self._handshakes.close()
        if self._listener is not None:
            self._listener.close()  # removes our socket file
            self._listener = None
        if self._reactor is not None:
            self._reactor.close()
            self._reactor = None

    @staticmethod
    def _emit(callback: Callable[[Any], None], arg: Any) -> None:
        try:
            callback(arg)
        except Exception:  # the controller's bug must not cost a hypervisor its connection
            LOG.exception("OVSDB manager callback %r failed", callback)

    # -- reports

    def _report(self, conn: OvsdbConnection) -> None:
        """At most one report per connection and round, only after a change."""
        idl = conn.idl
        if idl.change_seqno == conn.seen_seqno or not idl.has_ever_connected():
            return
        conn.seen_seqno = idl.change_seqno
        changes = idl.take_changes()
        names = touched_tunnels(changes, self._desired.get(conn.hypervisor or "", {}))
        if names is None or names:  # a VM port coming or going touches none: no re-plan
            conn.tunnels.look(names)
        report = conn.snapshots.take(idl, changes)
        if conn.identity is not None:
            report = replace(report, identity=conn.identity)
        first = conn.report is None
        self._track_name(conn, report.name)
        if conn.hypervisor in self._learned:
            conn.learned.look()
        if first:
            self._log_connected(conn, report)
        if report != conn.report:  # a change in columns no report shows is not news
            conn.report = report
            self._emit(self._on_report, report)

    def _log_connected(self, conn: OvsdbConnection, report: HypervisorReport) -> None:
        if report.name is None:
            conn.log.warning("connected, but has no %s in Open_vSwitch external_ids (dove-join "
                             "not run?); reported, never written to", contract.HYPERVISOR)
        else:
            conn.log.info("connected (TEP %s, %d ports on %s)", report.tep_ip,
                          len(report.ports), contract.INTEGRATION_BRIDGE)

    def _track_name(self, conn: OvsdbConnection, name: str | None) -> None:
        if name == conn.hypervisor:
            return
        self._election.leave(conn.hypervisor, conn.party)
        conn.hypervisor = name
        if name is None:
            return
        others = self._election.join(name, conn.party, conn.tunnels)
        if others:
            conn.log.warning("%s also reports this name; tunnel writes go through the newest "
                             "connection only", ", ".join(self._conns[p].peer for p in others))

    # -- tunnel writes

    def _reconcile(self, conn: OvsdbConnection) -> None:
        if not (conn.tunnels.due() and conn.monitoring and conn.hypervisor is not None
                and self._election.is_writer(conn.hypervisor, conn.party)):
            return
        desired = self._desired.get(conn.hypervisor)
        if desired is None:  # the controller has not spoken: leave every port as it is
            return
        conn.tunnels.write(conn.idl, conn.hypervisor, desired, self._txn_ids)
        self._check_txn(conn)

    def _write_learned(self, conn: OvsdbConnection) -> None:
        if not (conn.learned.due() and conn.monitoring and conn.hypervisor is not None
                and self._election.is_writer(conn.hypervisor, conn.party)):
            return
        values = self._learned.get(conn.hypervisor)
        if values:
            conn.learned.write(conn.idl, values)

    def _check_txn(self, conn: OvsdbConnection) -> None:
        conn.learned.finish()
        if conn.tunnels.finish():
            self._election.txn_finished(conn.hypervisor, conn.party)
