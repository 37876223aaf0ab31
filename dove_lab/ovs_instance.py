"""One private Open vSwitch (ovsdb-server + ovs-vswitchd) inside a hypervisor's namespace.

Each instance has its own run, db and log directories so several run side by side on one
machine (see shared LAB-NOTES). Daemons are stopped by their pid files, never by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dove_lab import shell

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
KILL_WAIT_S = 5.0  # how long a SIGKILLed process may take to be gone (it may be in D state)

LOG = logging.getLogger(__name__)


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
        """Stop both daemons and return once they have exited."""
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            stop_pidfile(self.pidfile(daemon), timeout)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def pidfile_pid(pidfile: Path) -> int | None:
    """The pid in a pid file if that process runs and was started with this pid file: a
    stale file's pid may belong to an unrelated process by now, which must not be signalled."""
    pid = read_pid(pidfile)
    if pid is None or not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(pidfile).encode() in cmdline else None


def stop_pidfile(pidfile: Path, timeout: float = 5.0) -> bool:
    """Stop the process named by a pid file (see stop_pid); True if none runs any more."""
    pid = pidfile_pid(pidfile)
    return True if pid is None else stop_pid(pid, timeout)


def stop_pid(pid: int, timeout: float = 5.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Send `sig`, SIGKILL after `timeout`, and return once the process is gone."""
    return stop_pids([pid], timeout, sig)


def stop_pids(pids: list[int], timeout: float = 5.0,
              sig: signal.Signals = signal.SIGTERM) -> bool:
    """Signal every process, SIGKILL those that outlive the deadline and wait until all have
    exited; True if they have (False, logged, if one survived SIGKILL for KILL_WAIT_S).

    Through pidfds, which work for processes that are not our children and, unlike a pid,
    can never come to name another process once ours has exited.
    """
    fds = [fd for fd in map(_pidfd, pids) if fd is not None]
    try:
        left = _signal_and_wait(fds, sig, timeout)
        left = _signal_and_wait(left, signal.SIGKILL, KILL_WAIT_S)
    finally:
        for fd in fds:
            os.close(fd)
    if left:
        LOG.warning("%d of %s still running %.0f s after SIGKILL", len(left), pids, KILL_WAIT_S)
    return not left


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None  # gone already


def _signal_and_wait(fds: list[int], sig: signal.Signals, timeout: float) -> list[int]:
    """Signal the processes and wait until the deadline; returns the fds of those still there."""
    for fd in fds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, sig)
    deadline = time.monotonic() + timeout
    left = list(fds)
    while left:
        poller = select.poll()
        for fd in left:
            poller.register(fd, select.POLLIN)  # readable once the process has exited
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        exited = {fd for fd, _ in poller.poll(remaining * 1000)}
        left = [fd for fd in left if fd not in exited]
    return left


def alive(pid: int) -> bool:
    """Whether the process runs. A zombie has exited, only its parent has not reaped it (and
    a process that is not our child is reaped by its own parent or init): it counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            # "pid (comm) state ...": comm may itself contain ") ", so split at the last one.
            return f.read().rpartition(") ")[2][:1] not in ("Z", "X", "")
    except OSError:
        return False
