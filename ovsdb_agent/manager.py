"""The controller's OVSDB manager: every hypervisor's ovsdb-server connects here.

dove-join points each hypervisor's OVSDB manager at tcp:CONTROLLER:6640, so hypervisors
connect out to us. OvsdbManager listens there and serves all of them from ONE thread: a python-ovs
IDL (a replica of the hypervisor's database) per accepted connection, all driven by one epoll
loop. It hands the controller an immutable HypervisorReport after every change, and keeps the
tunnel ports it owns on each br-int equal to what the controller asked for.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import errno
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import select
import socket
import stat
import struct
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import ovs.db.idl
import ovs.jsonrpc
import ovs.reconnect
import ovs.stream
import ovs.timeval
import ovs.util

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo, TunnelSpec

LOG = logging.getLogger(__name__)

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# Only what the reports and the tunnel writes need: less to replicate per hypervisor.
COLUMNS = {
    "Open_vSwitch": ["external_ids", "bridges"],
    "Bridge": ["name", "datapath_id", "ports", "fail_mode", "external_ids"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "ofport", "external_ids", "options", "error"],
}
TUNNEL_TYPE = "vxlan"
RETRY_MIN_S = 1.0  # backoff after a failed tunnel transaction, doubling up to RETRY_MAX_S
RETRY_MAX_S = 30.0
ACCEPTS_PER_ROUND = 64  # bounds one loop round when many hypervisors reconnect at once
ACCEPT_PAUSE_MS = 1000.0  # after e.g. EMFILE: a listener that stays readable would spin
_LISTENER = -1  # reactor parties that are not hypervisor connections
_WAKER = -2
_Txn = ovs.db.idl.Transaction


class OvsdbListenError(RuntimeError):
    """The manager could not listen where it was told to."""


# --- listening ------------------------------------------------------------------------------

def _listen(listen: str) -> tuple[socket.socket, tuple[str, int] | None]:
    """A non-blocking listening socket for ptcp:PORT[:IP] or punix:PATH, and the unix path.

    Bound here rather than by ovs.stream.PassiveStream.open: python-ovs parses ptcp as
    HOST:PORT (OVS spells it PORT:IP), leaves the socket blocking, and for punix installs
    fatal-signal handlers that would take SIGINT/SIGTERM away from the controller.
    """
    kind, _, rest = listen.partition(":")
    if kind == "ptcp":
        family, address = _tcp_address(listen, rest)
        return _bind(listen, socket.socket(family, socket.SOCK_STREAM), address), None
    if kind == "punix" and rest:
        if _someone_listens(rest):
            raise OvsdbListenError(f"cannot listen on {listen}: {os.strerror(errno.EADDRINUSE)}")
        _remove_stale_socket(rest)
        sock = _bind(listen, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), rest)
        os.chmod(rest, 0o700)  # like OVS's punix: only the owner (root) may connect
        return sock, (rest, os.stat(rest).st_ino)
    raise OvsdbListenError(f"cannot listen on {listen}: expected ptcp:PORT[:IP] or punix:PATH")


def _tcp_address(listen: str, rest: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    port, _, host = rest.partition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError(port)
    except ValueError:
        raise OvsdbListenError(
            f"cannot listen on {listen}: expected ptcp:PORT[:IP] with an IP address") from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return family, (str(ip), number)


def _bind(listen: str, sock: socket.socket, address: Any) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)  # a restarted controller sees every hypervisor at once
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OvsdbListenError(f"cannot listen on {listen}: {why}") from exc
    return sock


def _someone_listens(path: str) -> bool:
    """A live socket at path belongs to another manager; replacing it would steal its peers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _remove_stale_socket(path: str, inode: int | None = None) -> None:
    """A socket file left by a previous run would make bind fail; anything else stays, and so
    does a socket that replaced ours (inode given)."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and inode in (None, st.st_ino):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _peer_name(sock: socket.socket, seq: int) -> str:
    """The connection's name in reports and logs: tcp:IP:PORT, or the peer's pid for unix."""
    if sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return f"unix:pid={struct.unpack('3i', creds)[0]}#{seq}"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, port = sock.getpeername()[:2]
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


# --- the loop's poller ----------------------------------------------------------------------

class _Wants:
    """What one connection waits for, gathered through the poller interface that python-ovs's
    wait() methods call (fd_wait, timer_wait, timer_wait_until, immediate_wake)."""

    __slots__ = ("fds", "deadline")

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}
        self.deadline = math.inf  # in ovs.timeval.msec() time

    def fd_wait(self, fd: Any, events: int) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        if fd < 0:  # a socket closed under us: run the connection so it notices
            self.immediate_wake()
            return
        self.fds[fd] = self.fds.get(fd, 0) | events

    def timer_wait(self, msec: float) -> None:
        self.timer_wait_until(ovs.timeval.msec() + msec)

    def timer_wait_until(self, msec: float) -> None:
        self.deadline = min(self.deadline, msec)

    def immediate_wake(self) -> None:
        self.deadline = -math.inf


class _Reactor:
    """One epoll for all connections; says which connections have something to do.

    Used instead of ovs.poller.Poller, which is select()-based: select fails on descriptors
    above 1023 and makes every wake-up cost O(connections). Here a wake-up runs only the
    connections whose socket is ready or whose timer is due (python-ovs POLLIN/POLLOUT have
    the same values as EPOLLIN/EPOLLOUT).
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._party_of: dict[int, int] = {}  # fd -> party
        self._fds: dict[int, dict[int, int]] = {}  # party -> {fd: events}
        self._deadlines: dict[int, float] = {}

    def arm(self, party: int, wants: _Wants) -> None:
        old = self._fds.get(party, {})
        for fd in old.keys() - wants.fds.keys():
            self._unregister(fd)
        for fd, events in wants.fds.items():
            if old.get(fd) != events:
                self._register(fd, events, modify=fd in old)
                self._party_of[fd] = party
        self._fds[party] = dict(wants.fds)
        if wants.deadline == math.inf:
            self._deadlines.pop(party, None)
        else:
            self._deadlines[party] = wants.deadline

    def forget(self, party: int) -> None:
        """Call before the party's descriptors are closed (a closed number may be reused)."""
        for fd in self._fds.pop(party, {}):
            self._unregister(fd)
        self._deadlines.pop(party, None)

    def wake_soon(self, party: int) -> None:
        """Run the party in the next round, whatever it waits for."""
        self._deadlines[party] = -math.inf

    def poll(self) -> set[int]:
        due = min(self._deadlines.values(), default=math.inf)
        timeout = -1.0 if due == math.inf else max(0.0, (due - ovs.timeval.msec()) / 1000.0)
        events = self._epoll.poll(timeout)
        ready = {self._party_of[fd] for fd, _ in events if fd in self._party_of}
        now = ovs.timeval.msec()
        ready.update(p for p, deadline in self._deadlines.items() if deadline <= now)
        return ready

    def close(self) -> None:
        self._epoll.close()

    def _register(self, fd: int, events: int, modify: bool) -> None:
        try:
            if modify:
                self._epoll.modify(fd, events)
            else:
                self._epoll.register(fd, events)
        except FileExistsError:
            self._epoll.modify(fd, events)
        except FileNotFoundError:
            self._epoll.register(fd, events)

    def _unregister(self, fd: int) -> None:
        self._party_of.pop(fd, None)
        with contextlib.suppress(OSError):  # python-ovs closed it already: epoll dropped it
            self._epoll.unregister(fd)


# --- JSON-RPC framing -----------------------------------------------------------------------

_OUTSIDE_STRING = re.compile(r'[{}\[\]"]')
_INSIDE_STRING = re.compile(r'["\\]')


class _Framer:
    """Cuts a stream of JSON-RPC messages (JSON objects back to back) into whole messages.

    It only tracks nesting and strings, with regular expressions, and leaves parsing to the C
    json module: python-ovs parses in pure Python (its C parser needs libopenvswitch at build
    time), which made parsing most of the manager's CPU time when hypervisors connect. Each
    character is scanned once and a message's pieces are joined once, so a large initial dump
    arriving in many reads costs linear time.
    """

    def __init__(self) -> None:
        self._pieces: list[str] = []  # the text of the message not yet whole
        self._whole: collections.deque[str] = collections.deque()
        self._depth = 0
        self._in_string = False
        self._skip = 0  # 1 when a read ended on a backslash: the next character is escaped

    def feed(self, text: str) -> None:
        pos, start = self._skip, 0
        while True:
            pattern = _INSIDE_STRING if self._in_string else _OUTSIDE_STRING
            m = pattern.search(text, pos)
            if m is None:
                break
            pos, c = m.end(), m.group()
            if c == "\\":
                pos += 1  # skip the escaped character, even a quote
            elif c == '"':
                self._in_string = not self._in_string
            elif c in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:  # below zero is garbage, and json.loads will say so
                    self._pieces.append(text[start:pos])
                    self._whole.append("".join(self._pieces))
                    self._pieces, self._depth, start = [], 0, pos
        self._skip = max(0, pos - len(text))
        if start < len(text):
            self._pieces.append(text[start:])

    def next(self) -> str | None:
        """The next whole message's text, or None until more data arrives."""
        return self._whole.popleft() if self._whole else None

    def has_whole(self) -> bool:
        return bool(self._whole)


class _Connection(ovs.jsonrpc.Connection):
    """ovs.jsonrpc.Connection with _Framer and the C json parser for receiving.

    It also keeps one UTF-8 decoder per connection: python-ovs 4.0 starts a new one for every
    read, so a character split between two reads would drop the connection.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._framer = _Framer()
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def recv(self) -> tuple[int, Any]:
        if self.status:
            return self.status, None
        while True:
            text = self._framer.next()
            if text is not None:
                return self._message(text)
            error, data = self.stream.recv(65536)
            if error:
                if error != errno.EAGAIN:
                    self.error(error)
                return error, None
            if not data:
                self.error(ovs.util.EOF)
                return ovs.util.EOF, None
            self.received_bytes += len(data)
            try:
                self._framer.feed(self._decoder.decode(data))
            except UnicodeError:
                self.error(errno.EILSEQ)
                return self.status, None

    def _message(self, text: str) -> tuple[int, Any]:
        try:
            msg = ovs.jsonrpc.Message.from_json(json.loads(text))
        except ValueError as exc:
            msg = str(exc)
        if not isinstance(msg, ovs.jsonrpc.Message):  # from_json returns errors as strings
            LOG.warning("OVSDB connection %s: bad JSON-RPC message: %s", self.name, msg)
            self.error(errno.EPROTO)
            return self.status, None
        return 0, msg

    def recv_wait(self, poller: Any) -> None:
        if self.status or self._framer.has_whole():
            poller.immediate_wake()
        else:
            self.stream.recv_wait(poller)


# --- one hypervisor connection --------------------------------------------------------------

def _idl_schema_json(path: str) -> Any:
    """The vswitch schema cut down to COLUMNS, as JSON. Each connection's IDL needs its own
    schema objects; building them from this takes ~0.1 ms instead of ~5 ms for the whole."""
    helper = ovs.db.idl.SchemaHelper(location=path)
    for table, columns in COLUMNS.items():
        helper.register_columns(table, columns)
    return helper.get_idl_schema().to_json()


def _adopt(stream: Any, conn: str, schema_json: Any, probe_interval_ms: int) -> Any:
    """An IDL replicating the Open_vSwitch database over an accepted connection."""
    helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)  # the IDL will mutate its schema
    helper.register_all()  # schema_json holds only COLUMNS already
    # Idl opens a session from a remote string; open it on a placeholder and swap in a
    # session that adopts the connection we accepted.
    idl = ovs.db.idl.Idl("unix:/nonexistent/placeholder", helper, leader_only=False)
    idl.close()
    rpc = _Connection(stream)
    rpc.name = conn
    session = ovs.jsonrpc.Session.open_unreliably(rpc)
    session.rpc = rpc  # python-ovs 4.0's open_unreliably drops the connection it was given
    session.reconnect.set_probe_interval(probe_interval_ms)
    idl._session = session
    # Idl.run (re)starts its protocol when the session's seqno differs from _last_seqno: a new
    # session's seqno is 0 and a new Idl's _last_seqno None, so the first run asks for the dump.
    assert session.get_seqno() != idl._last_seqno
    return idl


class _HypervisorLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes messages with the hypervisor in operator terms: "OVSDB of hv2 (tcp:...)"."""

    def __init__(self, hv: _Hypervisor) -> None:
        super().__init__(LOG, {})
        self.hv = hv

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = {"hypervisor": self.hv.name, "ovsdb_conn": self.hv.conn}
        return f"OVSDB of {self.hv.who}: {msg}", {**kwargs, "extra": extra}


@dataclass(eq=False)
class _Hypervisor:
    """The manager thread's state for one accepted connection."""

    party: int
    conn: str
    idl: Any
    name: str | None = None
    report: HypervisorReport | None = None
    seen_seqno: int = 0  # idl.change_seqno at the last report
    dirty: bool = False  # tunnels need a look: desired state, database or a txn changed
    txn: Any = None
    txn_id: int = 0
    txn_summary: str = ""
    backoff_s: float = 0.0
    retry_at: float = 0.0  # ovs.timeval.msec() before which no new tunnel txn is tried
    waiting_for_bridge: bool = False
    conflicts: frozenset[str] = frozenset()
    log: _HypervisorLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = _HypervisorLog(self)

    @property
    def who(self) -> str:
        return f"{self.name} ({self.conn})" if self.name else self.conn

    @property
    def session(self) -> Any:
        return self.idl._session

    @property
    def monitoring(self) -> bool:
        return bool(self.idl.state == self.idl.IDL_S_MONITORING)


# --- reports --------------------------------------------------------------------------------

def _optional(value: Any) -> Any:
    """python-ovs gives an optional column ([0..1] values) as a list."""
    return value[0] if value else None


def _integration_bridge(idl: Any) -> Any:
    bridges = idl.tables["Bridge"].rows.values()
    return next((b for b in bridges if b.name == contract.INTEGRATION_BRIDGE), None)


def _port_info(iface: Any) -> PortInfo:
    ofport = _optional(iface.ofport)
    return PortInfo(
        name=iface.name,
        ofport=None if ofport is None or ofport < 0 else ofport,  # -1: vswitchd failed
        type=iface.type,
        external_ids=tuple(sorted(iface.external_ids.items())),
        options=tuple(sorted(iface.options.items())),
        error=_optional(iface.error),
    )


def _dpid(bridge: Any) -> int | None:
    try:
        return int(_optional(bridge.datapath_id), 16)
    except (TypeError, ValueError):
        return None


def _snapshot(conn: str, idl: Any) -> HypervisorReport:
    system = next(iter(idl.tables["Open_vSwitch"].rows.values()), None)
    ids = system.external_ids if system is not None else {}
    bridge = _integration_bridge(idl)
    ifaces = [] if bridge is None else [i for p in bridge.ports for i in p.interfaces]
    return HypervisorReport(
        conn=conn,
        name=ids.get(contract.HYPERVISOR),
        tep_ip=ids.get(contract.TEP_IP),
        datapath_type=ids.get(contract.DATAPATH_TYPE),
        dpid=None if bridge is None else _dpid(bridge),
        ports=tuple(sorted((_port_info(i) for i in ifaces), key=lambda p: p.name)),
    )


# --- tunnel ports ---------------------------------------------------------------------------

def _owned_ids(spec: TunnelSpec) -> dict[str, str]:
    return {contract.OWNER: contract.OWNER_VALUE, contract.REMOTE: spec.remote}


def _tunnel_options(spec: TunnelSpec) -> dict[str, str]:
    return {"remote_ip": spec.remote_ip, "key": "flow"}


def _is_owned_tunnel(port: Any) -> bool:
    ids = port.external_ids
    return bool(ids.get(contract.OWNER) == contract.OWNER_VALUE and contract.REMOTE in ids)


def _is_sound(port: Any) -> bool:
    """An owned tunnel port shaped as we create it; anything else is replaced, not patched."""
    ifaces = port.interfaces
    return len(ifaces) == 1 and ifaces[0].name == port.name and ifaces[0].type == TUNNEL_TYPE


def _drift(port: Any, spec: TunnelSpec) -> list[tuple[Any, str, str, str]]:
    """The (row, column, key, value) writes that bring a sound owned port to its spec."""
    iface = port.interfaces[0]
    want = [(iface, "options", k, v) for k, v in _tunnel_options(spec).items()]
    want += [(row, "external_ids", k, v) for row in (iface, port)
             for k, v in _owned_ids(spec).items()]
    return [w for w in want if getattr(w[0], w[1]).get(w[2]) != w[3]]


@dataclass
class _Plan:
    """What one transaction must do to make br-int's owned tunnel ports equal the desired."""

    bridge: Any
    create: dict[str, TunnelSpec] = field(default_factory=dict)
    delete: list[Any] = field(default_factory=list)  # Port rows
    fix: dict[str, tuple[TunnelSpec, list[tuple[Any, str, str, str]]]] = field(
        default_factory=dict)
    conflicts: frozenset[str] = frozenset()  # desired names held by ports we do not own

    def empty(self) -> bool:
        return not (self.create or self.delete or self.fix)

    def summary(self) -> str:
        parts = [f"create {n} -> {s.remote} {s.remote_ip}" for n, s in sorted(self.create.items())]
        parts += [f"fix {n} -> {s.remote} {s.remote_ip}" for n, (s, _) in sorted(self.fix.items())]
        parts += [f"delete {p.name}" for p in sorted(self.delete, key=lambda p: p.name)]
        return ", ".join(parts)


def _plan(idl: Any, desired: Mapping[str, TunnelSpec]) -> _Plan | None:
    """None while br-int does not exist; ports without our mark are only ever read."""
    bridge = _integration_bridge(idl)
    if bridge is None:
        return None
    owned = {p.name: p for p in bridge.ports if _is_owned_tunnel(p)}
    ours = {p.uuid for p in owned.values()} | {i.uuid for p in owned.values()
                                               for i in p.interfaces}
    taken = {r.name for t in ("Port", "Interface") for r in idl.tables[t].rows.values()
             if r.uuid not in ours}
    plan = _Plan(bridge, conflicts=frozenset(n for n in desired if n not in owned and n in taken))
    plan.delete = [p for n, p in owned.items() if n not in desired]
    for name, spec in desired.items():
        port = owned.get(name)
        if port is None:
            if name not in taken:
                plan.create[name] = spec
        elif not _is_sound(port):
            plan.delete.append(port)
            plan.create[name] = spec
        elif writes := _drift(port, spec):
            plan.fix[name] = (spec, writes)
    return plan


def _apply(txn: Any, idl: Any, plan: _Plan) -> None:
    for port in plan.delete:  # ovsdb-server garbage-collects the Port and its Interface
        plan.bridge.delvalue("ports", port)
    for name, spec in plan.create.items():
        iface = txn.insert(idl.tables["Interface"])
        iface.name = name
        iface.type = TUNNEL_TYPE
        iface.options = _tunnel_options(spec)
        iface.external_ids = _owned_ids(spec)
        port = txn.insert(idl.tables["Port"])
        port.name = name
        port.interfaces = [iface]
        port.external_ids = _owned_ids(spec)
        plan.bridge.addvalue("ports", port)
    for _, writes in plan.fix.values():
        for row, column, key, value in writes:
            row.setkey(column, key, value)


def _check_spec(port: str, spec: TunnelSpec) -> None:
    if not port:
        raise ValueError("tunnel port name must not be empty")
    try:
        ipaddress.ip_address(spec.remote_ip)
    except ValueError:
        raise ValueError(f"tunnel port {port}: remote_ip {spec.remote_ip!r} is not an IP "
                         "address") from None


# --- the manager ----------------------------------------------------------------------------

class OvsdbManager:
    """Listens for hypervisors' OVSDB connections and serves them all from one thread.

    on_report and on_disconnect run on the manager thread and must be cheap (enqueue).
    """

    def __init__(self, listen: str, on_report: Callable[[HypervisorReport], None],
                 on_disconnect: Callable[[str], None], probe_interval_ms: int = 5000,
                 *, schema_path: str = VSWITCH_SCHEMA) -> None:
        self.listen = listen
        self._on_report = on_report
        self._on_disconnect = on_disconnect
        self._probe_interval_ms = probe_interval_ms
        self._schema_path = schema_path
        self._lock = threading.Lock()  # guards _pending and _wake_w, shared with callers
        self._pending: dict[str, dict[str, TunnelSpec]] = {}
        self._wake_w: int | None = None
        # Everything below belongs to the manager thread once start() returns.
        self._desired: dict[str, dict[str, TunnelSpec]] = {}  # sticky, by hypervisor name
        self._hvs: dict[int, _Hypervisor] = {}
        self._by_name: dict[str, set[int]] = {}
        self._parties = itertools.count(1)
        self._txn_ids = itertools.count(1)
        self._schema_json: Any = None
        self._pstream: Any = None
        self._unix_path: tuple[str, int] | None = None  # path and inode of our socket
        self._wake_r: int | None = None
        self._reactor: _Reactor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        """Bind and start serving; raises OvsdbListenError here (OSError: no schema file)."""
        if self._thread is not None:
            raise RuntimeError("OvsdbManager already started")
        self._schema_json = _idl_schema_json(self._schema_path)  # once; IDLs only read it
        sock, self._unix_path = _listen(self.listen)
        self._pstream = ovs.stream.PassiveStream(sock, self.listen, None)
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with self._lock:
            self._wake_w = wake_w
        self._reactor = _Reactor()
        self._reactor.arm(_LISTENER, self._wants_fd(sock.fileno()))
        self._reactor.arm(_WAKER, self._wants_fd(self._wake_r))
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
        with self._lock:
            wake_w, self._wake_w = self._wake_w, None
        for fd in (wake_w, self._wake_r):
            if fd is not None:
                os.close(fd)
        self._wake_r = None
        self._thread = None

    def set_tunnels(self, hypervisor: str, desired: Mapping[str, TunnelSpec]) -> None:
        """Make br-int's owned tunnel ports of that hypervisor exactly `desired` (port name ->
        spec). Thread-safe; remembered by name and applied to whichever connection reports
        that name, now and after every reconnect."""
        wanted = dict(desired)
        for port, spec in wanted.items():
            _check_spec(port, spec)
        with self._lock:
            self._pending[hypervisor] = wanted
        self._wake()

    # -- thread plumbing

    @staticmethod
    def _wants_fd(fd: int) -> _Wants:
        wants = _Wants()
        wants.fd_wait(fd, select.EPOLLIN)
        return wants

    def _wake(self) -> None:
        with self._lock:  # held while writing so stop() cannot close a number being reused
            if self._wake_w is None:
                return
            with contextlib.suppress(BlockingIOError):  # a full pipe: the thread is awake
                os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        assert self._reactor is not None
        try:
            while not self._stopping:
                self._round(self._reactor.poll())
        except Exception:
            LOG.exception("OVSDB manager failed; hypervisors' OVSDB is no longer served")
            for hv in list(self._hvs.values()):
                self._drop(hv, "OVSDB manager failed")
        finally:
            self._close_all()

    def _round(self, ready: set[int]) -> None:
        """One loop round: run the connections that have something to do, then re-arm."""
        if _WAKER in ready:
            self._drain_wake()
        ready |= self._take_desired()
        if _LISTENER in ready:
            ready |= self._accept()
        for party in ready:
            hv = self._hvs.get(party)
            if hv is not None:
                self._service(hv)

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _take_desired(self) -> set[int]:
        with self._lock:
            pending, self._pending = self._pending, {}
        touched: set[int] = set()
        for name, desired in pending.items():
            self._desired[name] = desired
            for party in self._by_name.get(name, ()):
                hv = self._hvs[party]
                hv.dirty, hv.retry_at, hv.backoff_s = True, 0.0, 0.0  # a push retries now
                touched.add(party)
        return touched

    def _accept(self) -> set[int]:
        assert self._reactor is not None
        accepted: set[int] = set()
        wants = self._wants_fd(self._pstream.socket.fileno())
        for _ in range(ACCEPTS_PER_ROUND):
            error, stream = self._pstream.accept()
            if error == errno.EAGAIN:
                break
            if error in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                continue  # that peer gave up; others may be waiting
            if error:
                LOG.error("OVSDB manager on %s: cannot accept connections: %s; pausing "
                          "%.0f s", self.listen, os.strerror(error), ACCEPT_PAUSE_MS / 1000)
                wants = _Wants()
                wants.timer_wait(ACCEPT_PAUSE_MS)
                break
            accepted.add(self._adopt(stream))
        self._reactor.arm(_LISTENER, wants)
        return accepted

    def _adopt(self, stream: Any) -> int:
        party = next(self._parties)
        try:
            conn = _peer_name(stream.socket, party)
        except OSError:  # the peer left already; the IDL notices and drops it
            conn = f"{self.listen}#{party}"
        idl = _adopt(stream, conn, self._schema_json, self._probe_interval_ms)
        self._hvs[party] = _Hypervisor(party, conn, idl)
        LOG.debug("OVSDB connection %s accepted on %s", conn, self.listen)
        return party

    def _service(self, hv: _Hypervisor) -> None:
        try:
            probe_due = _probe_expired(hv.session)
            rpc = hv.session.rpc
            hv.idl.run()
            if not hv.session.is_alive():
                self._drop(hv, _disconnect_reason(rpc, probe_due))
                return
            self._check_txn(hv)
            self._report(hv)
            self._reconcile(hv)
            self._arm(hv)
        except Exception:
            hv.log.exception("internal error, dropping the connection")
            self._drop(hv, "internal error in the OVSDB manager")

    def _arm(self, hv: _Hypervisor) -> None:
        assert self._reactor is not None
        wants = _Wants()
        hv.idl.wait(wants)
        if hv.dirty and hv.txn is None and hv.retry_at > ovs.timeval.msec():
            wants.timer_wait_until(hv.retry_at)  # backoff after a failed transaction
        self._reactor.arm(hv.party, wants)

    def _drop(self, hv: _Hypervisor, reason: str) -> None:
        assert self._reactor is not None
        if self._hvs.pop(hv.party, None) is None:
            return
        self._reactor.forget(hv.party)  # before the socket closes: its number may be reused
        self._forget_name(hv)
        hv.idl.close()
        if hv.report is None:
            LOG.info("OVSDB connection %s closed before its first report: %s", hv.conn, reason)
            return
        hv.log.info("disconnected: %s", reason)
        self._emit(self._on_disconnect, hv.conn)

    def _close_all(self) -> None:
        for hv in list(self._hvs.values()):
            if self._reactor is not None:
                self._reactor.forget(hv.party)
            hv.idl.close()
        self._hvs.clear()
        self._by_name.clear()
        if self._pstream is not None:
            self._pstream.close()
            self._pstream = None
        if self._unix_path is not None:
            _remove_stale_socket(*self._unix_path)
            self._unix_path = None
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

    def _report(self, hv: _Hypervisor) -> None:
        """At most one report per connection and round, only after a change."""
        idl = hv.idl
        if idl.change_seqno == hv.seen_seqno or not idl.has_ever_connected():
            return
        hv.seen_seqno = idl.change_seqno
        hv.dirty = True
        report = _snapshot(hv.conn, idl)
        first = hv.report is None
        self._track_name(hv, report.name)
        if first:
            self._log_connected(hv, report)
        if report != hv.report:  # a change in columns no report shows is not news
            hv.report = report
            self._emit(self._on_report, report)

    def _log_connected(self, hv: _Hypervisor, report: HypervisorReport) -> None:
        if report.name is None:
            hv.log.warning("connected, but has no %s in Open_vSwitch external_ids (dove-join "
                           "not run?); reported, never written to", contract.HYPERVISOR)
        else:
            hv.log.info("connected (TEP %s, %d ports on %s)", report.tep_ip, len(report.ports),
                        contract.INTEGRATION_BRIDGE)

    def _track_name(self, hv: _Hypervisor, name: str | None) -> None:
        if name == hv.name:
            return
        self._forget_name(hv)
        hv.name = name
        if name is None:
            return
        others = self._by_name.setdefault(name, set())
        if others:
            hv.log.warning("%s also reports this name; tunnel writes go through the newest "
                           "connection only", ", ".join(self._hvs[p].conn for p in others))
        others.add(hv.party)

    def _forget_name(self, hv: _Hypervisor) -> None:
        name = hv.name
        if name is None or name not in self._by_name:
            return
        self._by_name[name].discard(hv.party)
        if not self._by_name[name]:
            del self._by_name[name]
        else:
            self._kick_writer(name)  # an older connection may be the writer now

    def _is_writer(self, hv: _Hypervisor) -> bool:
        """Tunnel writes for a name go through its newest connection, one transaction at a
        time: two connections to one database (a reconnect before the old connection timed
        out, or two manager targets) would otherwise race to create the same missing port,
        and the loser fails on Port's unique name."""
        parties = self._by_name.get(hv.name, set()) if hv.name is not None else set()
        return hv.party == max(parties, default=None) and not any(
            self._hvs[p].txn is not None for p in parties if p != hv.party)

    def _kick_writer(self, name: str) -> None:
        writer = self._hvs[max(self._by_name[name])]
        writer.dirty = True
        assert self._reactor is not None
        self._reactor.wake_soon(writer.party)

    # -- tunnel writes

    def _reconcile(self, hv: _Hypervisor) -> None:
        if hv.txn is not None or not hv.dirty or not hv.monitoring:
            return
        if ovs.timeval.msec() < hv.retry_at or hv.name is None or not self._is_writer(hv):
            return
        desired = self._desired.get(hv.name)
        if desired is None:  # the controller has not spoken: leave every port as it is
            return
        hv.dirty = False
        plan = _plan(hv.idl, desired)
        self._note_waiting(hv, plan)
        if plan is not None and not plan.empty():
            self._commit(hv, plan)

    def _note_waiting(self, hv: _Hypervisor, plan: _Plan | None) -> None:
        """Log waiting for br-int and name conflicts once per change, not once per round."""
        if (plan is None) != hv.waiting_for_bridge:
            hv.waiting_for_bridge = plan is None
            if plan is None:
                hv.log.info("no %s yet; tunnels follow when it appears",
                            contract.INTEGRATION_BRIDGE)
        conflicts = plan.conflicts if plan is not None else frozenset()
        if conflicts != hv.conflicts:
            hv.conflicts = conflicts
            if conflicts:
                hv.log.warning("not creating tunnel ports %s: ports of that name exist without "
                               "%s=%s", ", ".join(sorted(conflicts)), contract.OWNER,
                               contract.OWNER_VALUE)

    def _commit(self, hv: _Hypervisor, plan: _Plan) -> None:
        txn = _Txn(hv.idl)
        hv.txn, hv.txn_id, hv.txn_summary = txn, next(self._txn_ids), plan.summary()
        try:
            txn.add_comment(f"ryu_dove txn {hv.txn_id}: tunnel ports of {hv.name}")
            _apply(txn, hv.idl, plan)
            txn.commit()  # non-blocking: the reply is looked at in later rounds
        except Exception:
            txn.abort()
            hv.txn = None
            raise
        hv.log.info("txn %d: %s", hv.txn_id, hv.txn_summary)
        self._check_txn(hv)

    def _check_txn(self, hv: _Hypervisor) -> None:
        if hv.txn is None:
            return
        status = hv.txn.commit()  # after the first call this only reads the status
        if status == _Txn.INCOMPLETE:
            return
        txn, hv.txn, hv.dirty = hv.txn, None, True
        if hv.name in self._by_name and not self._is_writer(hv):
            self._kick_writer(hv.name)  # it may have waited for this transaction
        if status in (_Txn.SUCCESS, _Txn.UNCHANGED):
            hv.backoff_s = 0.0
            hv.log.info("txn %d: done", hv.txn_id)
            return
        hv.backoff_s = min(RETRY_MAX_S, max(RETRY_MIN_S, hv.backoff_s * 2))
        hv.retry_at = ovs.timeval.msec() + hv.backoff_s * 1000.0
        level = logging.ERROR if status == _Txn.ERROR else logging.WARNING
        hv.log.log(level, "txn %d (%s) failed: %s; retrying in %.0f s", hv.txn_id,
                   hv.txn_summary, txn.get_error(), hv.backoff_s)


def _probe_expired(session: Any) -> bool:
    """True when this run will drop the session for an unanswered inactivity probe."""
    fsm = session.reconnect
    return bool(fsm.state is ovs.reconnect.Reconnect.Idle and fsm.probe_interval
                and ovs.timeval.msec() >= fsm.state_entered + fsm.probe_interval)


def _disconnect_reason(rpc: Any, probe_expired: bool) -> str:
    if probe_expired:
        return "no reply to the inactivity probe"
    status = rpc.get_status() if rpc is not None else 0
    if status == ovs.util.EOF:
        return "connection closed by the hypervisor"
    return os.strerror(status) if status > 0 else "connection lost"
