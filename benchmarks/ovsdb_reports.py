"""What one hypervisor change costs the OVSDB manager when the hypervisor has N tunnel ports.

    python -m benchmarks.ovsdb_reports [--tunnels N] [--vms V] [--changes K] [--json]

Why: benchmarks.scale posts reports to the engine directly, so the manager's own work per
change (reading the hypervisor's replica into a report, re-planning tunnel ports) is not in
its figures; at a thousand hypervisors each hypervisor's br-int holds a thousand tunnel ports.
This runs a real ovsdb-server (no ovs-vswitchd: ports are rows only) with N owned tunnel
ports and V VM ports on br-int, replicates it with the manager's TrackingIdl, and for K VM
ports plugged one at a time measures, in the same run:
- full_snapshot_ms: the report read from scratch (idl_snapshot.snapshot: what every change
  cost before), and incremental_ms: Snapshots.take from the rows that changed;
- plan_tunnels_ms: planning every tunnel port against the desired set (what every change
  also cost before, and every hypervisor paid when one joined), plan_one_tunnel_ms: the
  plan for one name (what a join costs each hypervisor now), and how many of the K changes
  still trigger a plan (tunnel_replans).
Needs ovsdb-server and ovs-vsctl (Debian's openvswitch-switch); touches nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ovs.db.idl
import ovs.poller

from benchmarks.common import command_line, emit, machine_facts
from benchmarks.scale import positive
from ovsdb_agent import contract
from ovsdb_agent.idl_session import COLUMNS, NAME_INDEX, NAMED_TABLES, TrackingIdl
from ovsdb_agent.idl_snapshot import Snapshots, snapshot
from ovsdb_agent.reports import TunnelSpec
from ovsdb_agent.tunnel_ports import plan_tunnels, touched_tunnels
from ryu_dove.tunnel_ids import tunnel_port_name

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class Server:
    """A private ovsdb-server on a unix socket in `root`."""

    def __init__(self, root: Path) -> None:
        self.root, self.sock = root, root / "db.sock"
        subprocess.run(["ovsdb-tool", "create", str(root / "conf.db"), SCHEMA], check=True)
        subprocess.run(["ovsdb-server", str(root / "conf.db"), f"--remote=punix:{self.sock}",
                        f"--pidfile={root / 'ovsdb.pid'}", f"--unixctl={root / 'ovsdb.ctl'}",
                        f"--log-file={root / 'ovsdb.log'}", "--detach"], check=True)

    def vsctl(self, *args: str) -> None:
        subprocess.run(["ovs-vsctl", f"--db=unix:{self.sock}", "--no-wait", *args],
                       check=True, capture_output=True)

    def stop(self) -> None:
        pid = (self.root / "ovsdb.pid").read_text().strip()
        subprocess.run(["kill", pid], check=False)


def populate(server: Server, tunnels: int, vms: int) -> dict[str, Any]:
    server.vsctl("init", "--", "add-br", contract.INTEGRATION_BRIDGE)
    desired, cmds = {}, []
    for i in range(tunnels):
        ip = f"100.64.{i >> 8 & 255}.{i & 255}"
        name = tunnel_port_name(ip)
        desired[name] = TunnelSpec(ip, f"hv{i:04d}")
        owned = [f"external_ids:{contract.OWNER}={contract.OWNER_VALUE}",
                 f"external_ids:{contract.REMOTE}=hv{i:04d}"]
        cmds += ["--", "add-port", contract.INTEGRATION_BRIDGE, name, "--", "set", "port", name,
                 *owned, "--", "set", "interface", name, "type=vxlan", *owned,
                 f"options:remote_ip={ip}", "options:key=flow"]
    for i in range(vms):
        cmds += vm_port(f"vif-{i}", i)
    server.vsctl(*cmds)
    return desired


def vm_port(name: str, i: int) -> list[str]:
    return ["--", "add-port", contract.INTEGRATION_BRIDGE, name, "--", "set", "interface", name,
            f"external_ids:{contract.NETWORK}=t/net",
            f"external_ids:{contract.ATTACHED_MAC}=02:00:00:00:{i >> 8 & 255:02x}:{i & 255:02x}"]


def replica(server: Server, rows: int) -> Any:
    helper = ovs.db.idl.SchemaHelper(location=SCHEMA)
    for table, columns in COLUMNS.items():
        helper.register_columns(table, columns)
    idl = TrackingIdl(f"unix:{server.sock}", helper)
    for table in NAMED_TABLES:  # as adopt_stream makes the manager's IDLs
        idl.index_create(table, NAME_INDEX).add_column("name")
    pump(idl, lambda: len(idl.tables["Interface"].rows) >= rows)
    return idl


def pump(idl: Any, until: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idl.run()
        if until():
            return
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(20)
        poller.block()
    raise RuntimeError("the replica did not catch up")


def ms(seconds: list[float]) -> float:
    return round(1000 * statistics.median(seconds), 2)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    server = Server(root)
    try:
        desired = populate(server, args.tunnels, args.vms)
        idl = replica(server, args.tunnels + args.vms + 1)  # + br-int's own interface
        snaps = Snapshots("bench")
        snaps.take(idl, idl.take_changes())
        full, incremental, plans, scoped, replans = [], [], [], [], 0
        for k in range(args.changes):
            name = f"new-{k}"
            server.vsctl(*vm_port(name, args.vms + k)[1:])
            pump(idl, lambda n=name: any(r.name == n for r in
                                         idl.tables["Interface"].rows.values()))
            changes = idl.take_changes()
            t0 = time.perf_counter()
            replans += touched_tunnels(changes, desired) != set()
            report = snaps.take(idl, changes)
            incremental.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fresh = snapshot("bench", idl)
            full.append(time.perf_counter() - t0)
            if fresh != report:
                raise RuntimeError(f"the incremental report differs after {name}")
            t0 = time.perf_counter()
            plan_tunnels(idl, desired)
            plans.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plan_tunnels(idl, desired, {next(iter(desired))})
            scoped.append(time.perf_counter() - t0)
        idl.close()
    finally:
        server.stop()
    return {
        "benchmark": "ovsdb_reports", "tunnels": args.tunnels, "vms": args.vms,
        "changes": args.changes, "full_snapshot_ms": ms(full), "incremental_ms": ms(incremental),
        "speedup": round(statistics.median(full) / statistics.median(incremental), 1),
        "plan_tunnels_ms": ms(plans), "plan_one_tunnel_ms": ms(scoped),
        "tunnel_replans": replans,
        "machine": machine_facts(), "command": command_line(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ovsdb_reports",
                                description=__doc__.splitlines()[0])
    p.add_argument("--tunnels", type=positive, default=1000, help="tunnel ports (1000)")
    p.add_argument("--vms", type=positive, default=20, help="VM ports to start with (20)")
    p.add_argument("--changes", type=positive, default=20, help="VM ports plugged (20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dove-ovsdb-") as tmp:
        result = run(args, Path(tmp))
    emit(result, args.json, ("tunnels", "full_snapshot_ms", "incremental_ms", "speedup",
                             "plan_tunnels_ms", "plan_one_tunnel_ms", "tunnel_replans"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
