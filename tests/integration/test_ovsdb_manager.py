"""The OVSDB manager against real ovsdb-servers (and ovs-vswitchd) that connect to it.

Hypervisors reach the manager through a unix socket: an OVS inside a namespace cannot reach the
root namespace's loopback, and a unix socket crosses namespaces through the filesystem, so no
veths, addresses or bridges are needed for these tests. The same code serves tcp (one test runs
OVSDB-only servers in the root namespace over 127.0.0.1).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ovs.db.idl as ovs_idl
import pytest
from ovs.poller import Poller

from dove_lab import shell
from dove_lab.nodes import delete_netns, netns_add
from dove_lab.ovs_instance import SCHEMA, OvsInstance
from ovsdb_agent import contract, tunnel_writer
from ovsdb_agent.idl_session import COLUMNS
from ovsdb_agent.idl_snapshot import snapshot
from ovsdb_agent.join import JoinRequest, join
from ovsdb_agent.jsonrpc_framing import Framer
from ovsdb_agent.manager import OvsdbListenError, OvsdbManager
from ovsdb_agent.reports import HypervisorReport, TunnelSpec
from ovsdb_agent.tunnel_ports import plan_tunnels
from ovsdb_agent.vswitch import VSwitch

BR = contract.INTEGRATION_BRIDGE
OWNED = (contract.OWNER, contract.OWNER_VALUE)


class Recorder:
    """The controller side of the callbacks: remembers everything, lets tests wait on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.reports: list[HypervisorReport] = []
        self.disconnects: list[str] = []

    def on_report(self, report: HypervisorReport) -> None:
        with self._cond:
            self.reports.append(report)
            self._cond.notify_all()

    def on_disconnect(self, conn: str) -> None:
        with self._cond:
            self.disconnects.append(conn)
            self._cond.notify_all()

    def latest(self, name: str) -> HypervisorReport | None:
        with self._cond:
            return next((r for r in reversed(self.reports) if r.name == name), None)

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                         f"last report: {self.reports[-1:]}")
                self._cond.wait(left)

    def wait_report(self, name: str, check: Callable[[HypervisorReport], bool], what: str,
                    timeout: float = 10.0) -> HypervisorReport:
        """The newest report of hypervisor `name` once it passes `check`."""
        def ok() -> bool:
            report = self.latest(name)
            return report is not None and check(report)
        self.wait(f"{name}: {what}", ok, timeout)
        report = self.latest(name)
        assert report is not None
        return report


@dataclass
class Controller:
    sock: Path
    recorder: Recorder
    manager: OvsdbManager

    @property
    def target(self) -> str:
        return f"unix:{self.sock}"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short path: unix socket names are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="dvt"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_controller(sock_dir: Path) -> Iterator[Callable[[], Controller]]:
    """Start managers on one socket path (a restart is a second call); all stopped after."""
    started: list[OvsdbManager] = []

    def start() -> Controller:
        recorder = Recorder()
        sock = sock_dir / "mgr.sock"
        manager = OvsdbManager(f"punix:{sock}", recorder.on_report, recorder.on_disconnect)
        manager.start()
        started.append(manager)
        return Controller(sock, recorder, manager)

    yield start
    for manager in started:
        manager.stop()


@pytest.fixture
def controller(start_controller: Callable[[], Controller]) -> Controller:
    return start_controller()


@pytest.fixture
def hypervisors(tmp_path: Path, controller: Controller) -> Iterator[dict[str, OvsInstance]]:
    """hv1 and hv2: OVS in namespaces, joined, their manager pointed at the controller."""
    prefix = f"dove-test{secrets.token_hex(3)}"
    made: dict[str, OvsInstance] = {}
    try:
        for index in (1, 2):
            name = f"hv{index}"
            netns_add(f"{prefix}.{name}")
            made[name] = OvsInstance(f"{prefix}.{name}", tmp_path / name)
            made[name].start()
            with VSwitch(made[name].db) as vswitch:
                join(vswitch, JoinRequest(controller="203.0.113.1", tep_ip=f"192.0.2.{10 + index}",
                                          hypervisor=name, datapath_type="netdev"))
            made[name].vsctl("set-manager", controller.target)
        yield made
    finally:
        for ovs in made.values():
            ovs.stop()
        for index in (1, 2):
            delete_netns(f"{prefix}.hv{index}")


def tunnel(report: HypervisorReport, name: str) -> bool:
    """The report shows this tunnel port with an ofport from ovs-vswitchd."""
    port = report.port(name)
    return port is not None and port.ofport is not None


def column(ovs: OvsInstance, table: str, row: str, col: str) -> str:
    return ovs.vsctl("--bare", "get", table, row, col).strip()


def test_hypervisors_connect_and_report(hypervisors, controller):
    rec = controller.recorder
    for index, name in enumerate(("hv1", "hv2"), start=1):
        report = rec.wait_report(name, lambda r: r.dpid is not None, "a report with br-int's dpid")
        assert report.tep_ip == f"192.0.2.{10 + index}"
        assert report.datapath_type == "netdev"
        expected = int(column(hypervisors[name], "bridge", BR, "datapath_id").strip('"'), 16)
        assert report.dpid == expected
        local = report.port(BR)
        assert local is not None and local.type == "internal" and local.ofport == 65534
    assert rec.latest("hv1").conn != rec.latest("hv2").conn
    assert rec.disconnects == []


def test_vm_port_appears_and_disappears(hypervisors, controller):
    rec, ovs = controller.recorder, hypervisors["hv1"]
    shell.run(["ip", "-n", ovs.netns, "link", "add", "vm1", "type", "veth",
               "peer", "name", "vm1-peer"])
    shell.run(["ip", "-n", ovs.netns, "link", "set", "vm1", "up"])
    ids = {contract.IFACE_ID: "vm1", contract.ATTACHED_MAC: "02:00:00:00:00:01",
           contract.NETWORK: "acme/web", contract.IPS: "198.51.100.10"}
    with VSwitch(ovs.db) as vswitch:
        vswitch.plug_vif(BR, "vm1", ids)
    report = rec.wait_report("hv1", lambda r: tunnel(r, "vm1"), "vm1 with an ofport")
    vm1 = report.port("vm1")
    assert vm1 is not None
    assert vm1.ids() == ids and vm1.type == "" and vm1.error is None
    assert vm1.ofport == int(column(ovs, "interface", "vm1", "ofport"))
    with VSwitch(ovs.db) as vswitch:
        vswitch.unplug("vm1")
    rec.wait_report("hv1", lambda r: r.port("vm1") is None, "vm1 gone")
    assert rec.latest("hv2").port("vm1") is None  # the other hypervisor never had it


def test_tunnels_follow_desired_state_and_spare_foreign_ports(hypervisors, controller):
    rec, mgr, ovs = controller.recorder, controller.manager, hypervisors["hv1"]
    rec.wait_report("hv1", lambda r: r.dpid is not None, "first report")
    # Ports without the owner mark, one of them named like a tunnel the controller will want.
    ovs.vsctl("add-port", BR, "foreign0", "--", "set", "interface", "foreign0", "type=vxlan",
              "options:remote_ip=192.0.2.99")
    ovs.vsctl("add-port", BR, "vx-clash", "--", "set", "interface", "vx-clash", "type=vxlan",
              "options:remote_ip=192.0.2.98")

    mgr.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2"),
                            "vx-clash": TunnelSpec("192.0.2.50", "hv50")})
    mgr.set_tunnels("hv2", {"vx-hv1": TunnelSpec("192.0.2.11", "hv1")})
    report = rec.wait_report("hv1", lambda r: tunnel(r, "vx-hv2"), "tunnel vx-hv2")
    vx = report.port("vx-hv2")
    assert vx is not None and vx.type == "vxlan" and vx.error is None
    assert vx.opts() == {"remote_ip": "192.0.2.12", "key": "flow"}
    assert vx.ids() == dict([OWNED, (contract.REMOTE, "hv2")])
    assert column(ovs, "port", "vx-hv2", "external_ids:dove-remote") == "hv2"
    assert column(ovs, "port", "vx-hv2", "external_ids:dove-owner") == "ryu_dove"
    rec.wait_report("hv2", lambda r: tunnel(r, "vx-hv1"), "tunnel vx-hv1")
    uuid = column(ovs, "port", "vx-hv2", "_uuid")

    # Change the far end of one tunnel, add another: updated in place, created.
    mgr.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.22", "hv2b"),
                            "vx-hv3": TunnelSpec("192.0.2.13", "hv3"),
                            "vx-clash": TunnelSpec("192.0.2.50", "hv50")})
    report = rec.wait_report("hv1", lambda r: tunnel(r, "vx-hv3") and r.port("vx-hv2").opts()[
        "remote_ip"] == "192.0.2.22", "vx-hv2 moved, vx-hv3 created")
    assert report.port("vx-hv2").ids()[contract.REMOTE] == "hv2b"
    assert column(ovs, "port", "vx-hv2", "external_ids:dove-remote") == "hv2b"
    assert column(ovs, "port", "vx-hv2", "_uuid") == uuid

    # Nothing desired: every owned tunnel goes, foreign ports stay exactly as they were.
    mgr.set_tunnels("hv1", {})
    report = rec.wait_report("hv1", lambda r: r.port("vx-hv2") is None and r.port(
        "vx-hv3") is None, "owned tunnels removed")
    for name, ip in (("foreign0", "192.0.2.99"), ("vx-clash", "192.0.2.98")):
        assert column(ovs, "interface", name, "options:remote_ip") == f'"{ip}"'
        assert ovs.vsctl("get", "port", name, "external_ids").strip() == "{}"
        assert report.port(name) is not None
    assert rec.latest("hv2").port("vx-hv1") is not None  # hv2's desired state was not touched


def test_a_tampered_tunnel_is_repaired_and_a_new_one_planned_alone(hypervisors, controller,
                                                                  monkeypatch):
    rec, mgr, ovs = controller.recorder, controller.manager, hypervisors["hv1"]
    rec.wait_report("hv1", lambda r: r.dpid is not None, "first report")
    desired = {f"vx-hv{i}": TunnelSpec(f"192.0.2.{20 + i}", f"hv{i}") for i in range(2, 6)}
    mgr.set_tunnels("hv1", desired)
    rec.wait_report("hv1", lambda r: all(tunnel(r, n) for n in desired), "four tunnels")
    # Someone edits one of ours: the change to our row is noticed and undone.
    ovs.vsctl("set", "interface", "vx-hv3", "options:remote_ip=192.0.2.99")
    rec.wait_report("hv1", lambda r: r.port("vx-hv3").opts()["remote_ip"] == "192.0.2.23",
                    "vx-hv3 repaired")
    # One more hypervisor: the plan looks at that one port, not at every tunnel again.
    scopes = []

    def spy(idl, want, only=None):
        scopes.append(None if only is None else set(only))
        return plan_tunnels(idl, want, only)

    monkeypatch.setattr(tunnel_writer, "plan_tunnels", spy)
    mgr.set_tunnels("hv1", {**desired, "vx-hv6": TunnelSpec("192.0.2.26", "hv6")})
    rec.wait_report("hv1", lambda r: tunnel(r, "vx-hv6"), "tunnel vx-hv6")
    # The repair's own confirmation (a look at vx-hv3) may still be pending and merge in;
    # what must never happen is a look at every tunnel or at one nobody touched.
    assert scopes and all(scope is not None and scope <= {"vx-hv3", "vx-hv6"}
                          for scope in scopes), scopes
    assert any("vx-hv6" in scope for scope in scopes), scopes


def test_bad_desired_state_is_refused_at_the_call(controller):
    with pytest.raises(ValueError, match="remote_ip 'nowhere' is not an IP address"):
        controller.manager.set_tunnels("hv1", {"vx-x": TunnelSpec("nowhere", "hvx")})


def test_reconnect_reports_again_and_restores_sticky_tunnels(hypervisors, controller):
    rec, mgr, ovs = controller.recorder, controller.manager, hypervisors["hv1"]
    mgr.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2")})
    first = rec.wait_report("hv1", lambda r: tunnel(r, "vx-hv2"), "tunnel vx-hv2")
    hv2_conn = rec.wait_report("hv2", lambda r: True, "a report").conn

    ovs.vsctl("del-manager")  # ovsdb-server closes the connection to us
    rec.wait("hv1's disconnect", lambda: first.conn in rec.disconnects)
    # While it is away: its tunnel is lost and the controller wants one more.
    ovs.vsctl("del-port", BR, "vx-hv2")
    mgr.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2"),
                            "vx-hv3": TunnelSpec("192.0.2.13", "hv3")})
    ovs.vsctl("set-manager", controller.target)

    again = rec.wait_report("hv1", lambda r: r.conn != first.conn and tunnel(r, "vx-hv2")
                            and tunnel(r, "vx-hv3"), "new connection with both tunnels")
    assert again.port("vx-hv2").opts()["remote_ip"] == "192.0.2.12"
    assert rec.disconnects == [first.conn]
    assert rec.latest("hv2").conn == hv2_conn


def test_two_connections_of_one_hypervisor_write_once(hypervisors, controller, caplog):
    """A second manager target to the same controller: both connections report, only one
    writes, so they do not race to create the same port."""
    caplog.set_level(logging.INFO, logger="ovsdb_agent.manager")
    rec, ovs = controller.recorder, hypervisors["hv1"]
    second = controller.sock.with_name("alias.sock")
    second.symlink_to(controller.sock)
    ovs.vsctl("set-manager", controller.target, f"unix:{second}")

    def conns_of_hv1() -> set[str]:
        return {r.conn for r in rec.reports if r.name == "hv1"} - set(rec.disconnects)

    rec.wait("two connections from hv1", lambda: len(conns_of_hv1()) == 2)
    controller.manager.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2")})
    rec.wait("both connections see vx-hv2", lambda: all(
        tunnel(next(r for r in reversed(rec.reports) if r.conn == c), "vx-hv2")
        for c in conns_of_hv1()))
    rows = ovs.vsctl("--bare", "--columns=_uuid", "find", "port", "name=vx-hv2").split()
    assert len(rows) == 1
    txns = [r.getMessage() for r in caplog.records if ": txn " in r.getMessage()]
    assert len([t for t in txns if t.endswith(": done")]) == 1, txns
    assert not [t for t in txns if "failed" in t], txns


def test_controller_restart_reads_state_and_changes_nothing(hypervisors, controller,
                                                            start_controller, caplog):
    caplog.set_level(logging.INFO, logger="ovsdb_agent.manager")
    rec, ovs = controller.recorder, hypervisors["hv1"]
    controller.manager.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2")})
    rec.wait_report("hv1", lambda r: tunnel(r, "vx-hv2"), "tunnel vx-hv2")
    uuid = column(ovs, "port", "vx-hv2", "_uuid")
    controller.manager.stop()
    assert not controller.sock.exists()  # the manager removes its socket

    caplog.clear()
    restarted = start_controller()  # hypervisors reconnect by themselves, after their backoff
    restarted.manager.set_tunnels("hv1", {"vx-hv2": TunnelSpec("192.0.2.12", "hv2")})
    report = restarted.recorder.wait_report("hv1", lambda r: r.dpid is not None,
                                            "report after restart", timeout=20)
    assert tunnel(report, "vx-hv2")
    # hv1 was reconciled in the round that reported it; a later write to hv2 finishing means
    # any write to hv1 would have been logged by now.
    restarted.manager.set_tunnels("hv2", {"vx-hv1": TunnelSpec("192.0.2.11", "hv1")})
    restarted.recorder.wait_report("hv2", lambda r: tunnel(r, "vx-hv1"), "tunnel vx-hv1",
                                   timeout=20)
    writes = [r.getMessage() for r in caplog.records if "txn" in r.getMessage()]
    assert writes and all("OVSDB of hv2 " in w for w in writes), writes
    assert column(ovs, "port", "vx-hv2", "_uuid") == uuid  # read, compared, left alone


def test_listen_errors_are_reported_clearly(controller):
    def manager(listen: str) -> OvsdbManager:
        return OvsdbManager(listen, lambda r: None, lambda c: None)

    with pytest.raises(OvsdbListenError,
                       match="cannot listen on ptcp:6640:192.0.2.200: Cannot assign requested"):
        manager("ptcp:6640:192.0.2.200").start()
    with pytest.raises(OvsdbListenError, match="cannot listen on tcp:6640: expected ptcp"):
        manager("tcp:6640").start()
    with pytest.raises(OvsdbListenError, match="cannot listen on punix:/nonexistent/x.sock: No "
                                               "such file or directory"):
        manager("punix:/nonexistent/x.sock").start()
    with pytest.raises(OvsdbListenError, match="Address already in use"):
        manager(f"punix:{controller.sock}").start()  # never steal a live manager's socket
    assert controller.sock.exists()


# --- many hypervisors: OVSDB-only servers (no ovs-vswitchd), in the root namespace ----------

def start_ovsdb_only(root: Path, index: int, manager_target: str) -> OvsInstance:
    """An ovsdb-server that looks like a joined hypervisor, its manager set to the target."""
    ovs = OvsInstance(netns="", root=root)  # root namespace: it only needs unix/loopback
    root.mkdir(parents=True)
    shell.run(["ovsdb-tool", "create", str(root / "conf.db"), SCHEMA])
    shell.run(["ovsdb-server", str(root / "conf.db"), f"--remote=punix:{ovs.db_sock}",
               "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
               f"--pidfile={ovs.pidfile('ovsdb-server')}", f"--log-file={root / 'ovsdb.log'}",
               f"--unixctl={root / 'ovsdb-server.ctl'}", "--detach"], env=ovs.env)
    ovs.vsctl("--no-wait", "init", "--", "set", "open_vswitch", ".",
              f"external_ids:{contract.HYPERVISOR}=sim{index}",
              f"external_ids:{contract.TEP_IP}=192.0.2.{100 + index}",
              "--", "add-br", BR, "--", "set", "bridge", BR, f"datapath_id={index:016x}",
              "--", "set-manager", manager_target)
    return ovs


@pytest.fixture
def ovsdb_only(tmp_path: Path) -> Iterator[Callable[[int, str], OvsInstance]]:
    made: list[OvsInstance] = []

    def start(index: int, target: str) -> OvsInstance:
        made.append(OvsInstance(netns="", root=tmp_path / f"sim{index}"))
        return start_ovsdb_only(made[-1].root, index, target)

    yield start
    for ovs in made:
        ovs.stop()


def test_twenty_hypervisors_at_once(controller, ovsdb_only):
    rec, mgr, count = controller.recorder, controller.manager, 20
    names = [f"sim{i}" for i in range(1, count + 1)]
    started = time.monotonic()
    for i in range(1, count + 1):
        ovsdb_only(i, controller.target)
    rec.wait("all twenty reports", lambda: all(rec.latest(n) is not None for n in names))
    assert sorted(rec.latest(n).dpid for n in names) == list(range(1, count + 1))
    assert len({rec.latest(n).conn for n in names}) == count

    mesh = {name: {f"vx-{peer}": TunnelSpec(f"192.0.2.{100 + j}", peer)
                   for j, peer in enumerate(names, start=1) if peer != name} for name in names}
    for name, desired in mesh.items():
        mgr.set_tunnels(name, desired)
    rec.wait("a full mesh of tunnels", lambda: all(
        {p.name for p in rec.latest(n).ports if p.type == "vxlan"} == set(mesh[n])
        for n in names))
    assert time.monotonic() - started < 10.0
    assert rec.disconnects == []


def fresh_snapshot(ovs: OvsInstance, conn: str) -> HypervisorReport:
    """The hypervisor's state read from scratch, through an IDL of our own."""
    helper = ovs_idl.SchemaHelper(location=SCHEMA)
    for table, columns in COLUMNS.items():
        helper.register_columns(table, columns)
    idl = ovs_idl.Idl(f"unix:{ovs.db_sock}", helper)
    try:
        deadline = time.monotonic() + 10
        while not idl.has_ever_connected() or idl.change_seqno == 0:
            assert time.monotonic() < deadline, "could not read the database"
            idl.run()
            poller = Poller()
            idl.wait(poller)
            poller.timer_wait(50)
            poller.block()
        return snapshot(conn, idl)
    finally:
        idl.close()


def test_reports_are_what_the_database_holds_after_every_change(controller, ovsdb_only):
    """The manager rebuilds a report from the rows that changed; after each kind of change
    it must equal the hypervisor's database read from scratch."""
    rec = controller.recorder
    sim = ovsdb_only(1, controller.target)
    first = rec.wait_report("sim1", lambda r: r.dpid == 1, "first report")
    vm = {contract.IFACE_ID: "vm1", contract.ATTACHED_MAC: "02:00:00:00:00:01",
          contract.NETWORK: "acme/web", contract.IPS: "198.51.100.10"}
    changes = [
        ["add-port", BR, "vif1", "--", "set", "interface", "vif1",
         *(f"external_ids:{k}={v}" for k, v in vm.items())],
        ["add-port", BR, "dv-c0000202", "--", "set", "interface", "dv-c0000202", "type=vxlan",
         "options:remote_ip=192.0.2.2", "options:key=flow", "--", "set", "port",
         "dv-c0000202", "external_ids:dove-owner=ryu_dove", "external_ids:dove-remote=hv2"],
        ["set", "interface", "vif1", "external_ids:dove-ips=198.51.100.11"],
        ["add-bond", BR, "bond0", "eth-a", "eth-b"],  # one port, two interfaces
        ["add-bond-iface", "bond0", "eth-c"],  # a port's interfaces change
        ["del-bond-iface", "bond0", "eth-a"],
        ["add-br", "br-other", "--", "add-port", "br-other", "other0"],  # not br-int's
        ["del-port", BR, "bond0", "--", "set", "interface", "dv-c0000202",
         "options:remote_ip=192.0.2.22"],
        ["del-port", BR, "vif1"],
        ["set", "open_vswitch", ".", f"external_ids:{contract.TEP_IP}=192.0.2.150"],
        ["del-br", BR, "--", "add-br", BR, "--", "set", "bridge", BR,
         "datapath_id=0000000000000007", "--", "add-port", BR, "vif2"],
    ]
    for change in changes:
        sim.vsctl("--no-wait", *change)
        truth = fresh_snapshot(sim, first.conn)
        rec.wait_report("sim1", lambda r, t=truth: r == t, f"the report after {change[:3]}")


def test_tcp_listener_serves_hypervisors(ovsdb_only):
    rec = Recorder()
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = OvsdbManager(f"ptcp:{port}:127.0.0.1", rec.on_report, rec.on_disconnect)
    manager.start()
    try:
        ovs = ovsdb_only(1, f"tcp:127.0.0.1:{port}")
        report = rec.wait_report("sim1", lambda r: r.dpid == 1, "a report over tcp")
        assert report.conn.startswith("tcp:127.0.0.1:")
        ovs.vsctl("--no-wait", "del-manager")
        rec.wait("the disconnect", lambda: rec.disconnects == [report.conn])
    finally:
        manager.stop()


def test_framer_splits_messages_wherever_reads_end():
    """Messages cut at every possible point come out whole (strings hide braces and quotes)."""
    messages = [{"id": 1, "result": {"a": ["{", "}", "[", "]"], "b": 'q"uote\\\\'}},
                {"method": "update3", "params": [None, "x", {"t": {"é✓": 'a\\"b'}}]},
                {"id": "echo", "result": []}]
    stream = " ".join(json.dumps(m, ensure_ascii=False) for m in messages)

    def frame(pieces: list[str]) -> list[object]:
        framer, got = Framer(), []
        for piece in pieces:
            framer.feed(piece)
            while (text := framer.next()) is not None:
                got.append(json.loads(text))
        return got

    for cut in range(len(stream) + 1):
        assert frame([stream[:cut], stream[cut:]]) == messages, cut
    assert frame(list(stream)) == messages  # one character per read
