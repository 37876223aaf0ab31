"""One private Open vSwitch (ovsdb-server + ovs-vswitchd) inside a hypervisor's namespace.

Each instance has its own run, db and log directories so several run side by side on one
machine (see shared LAB-NOTES). Daemons are stopped by their pid files, never by name.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dove_lab import shell

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@dataclass(frozen=True)
class OvsInstance:
    netns: str
    root: Path  # private directory holding conf.db, sockets, pid files and logs

    @property
    def db_sock(self) -> Path:
        return self.root / "db.sock"

    @property
    def db(self) -> str:
        return f"unix:{self.db_sock}"

    @property
    def env(self) -> dict[str, str]:
        d = str(self.root)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d,
                "OVS_SYSCONFDIR": d, "OVS_PKGDATADIR": "/usr/share/openvswitch"}

    def pidfile(self, daemon: str) -> Path:
        return self.root / f"{daemon}.pid"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "conf.db"
        if not conf.exists():
            shell.run(["ovsdb-tool", "create", str(conf), SCHEMA])
        shell.run(["ovsdb-server", str(conf), f"--remote=punix:{self.db_sock}",
                   "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                   # As Debian's ovs-ctl: ssl: managers use the SSL row dove-join writes.
                   "--private-key=db:Open_vSwitch,SSL,private_key",
                   "--certificate=db:Open_vSwitch,SSL,certificate",
                   "--ca-cert=db:Open_vSwitch,SSL,ca_cert",
                   f"--pidfile={self.pidfile('ovsdb-server')}",
                   f"--log-file={self.root / 'ovsdb-server.log'}",
                   f"--unixctl={self.root / 'ovsdb-server.ctl'}", "--detach"],
                  netns=self.netns, env=self.env)
        self.vsctl("--no-wait", "init")
        shell.run(["ovs-vswitchd", self.db, f"--pidfile={self.pidfile('ovs-vswitchd')}",
                   f"--log-file={self.root / 'ovs-vswitchd.log'}",
                   f"--unixctl={self.root / 'ovs-vswitchd.ctl'}",
                   "--detach", "--disable-system"],
                  netns=self.netns, env=self.env)

    def vsctl(self, *args: str) -> str:
        return shell.run(["ovs-vsctl", f"--db={self.db}", "--timeout=10", *args], env=self.env)

    def ofctl(self, *args: str, version: str = "OpenFlow13") -> str:
        return shell.run(["ovs-ofctl", "-O", version, *args], env=self.env)

    def appctl(self, *args: str) -> str:
        return shell.run(["ovs-appctl", "-t", str(self.root / "ovs-vswitchd.ctl"), *args],
                         env=self.env)

    def bridge_mgmt(self, bridge: str) -> str:
        """ovs-ofctl target for a bridge of this instance (its private management socket)."""
        return f"unix:{self.root / (bridge + '.mgmt')}"

    def stop(self, timeout: float = 5.0) -> None:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            stop_pidfile(self.pidfile(daemon), timeout)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_pidfile(pidfile: Path, timeout: float = 5.0) -> None:
    """SIGTERM the process named by a pid file, SIGKILL it if it outlives the deadline."""
    pid = read_pid(pidfile)
    if pid is None:
        return
    stop_pid(pid, timeout)


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
