"""Running the lab's controller as a background process, with its log in the lab's folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from dove_lab.naming import Addressing
from dove_lab.ovs_instance import alive, read_pid, stop_pid
from dove_lab.state import LabState


class ControllerError(RuntimeError):
    pass


def controller_command(state: LabState) -> list[str]:
    if state.osken_manager:
        return manager_command(state)
    exe = Path(sys.executable).with_name("dove-controller")
    found = str(exe) if exe.exists() else shutil.which("dove-controller")
    if not found:
        raise ControllerError("dove-controller is not installed in this environment; "
                              "use --no-controller for the plain-OVS baseline")
    cmd = [found, "--listen", Addressing(state.slot).controller_ip,
           "--state-dir", str(state.dir / "controller-state")]  # kept across its restarts
    for path in state.policy:
        cmd += ["--policy", path]
    return cmd + _tls_args(state) + state.controller_args


def manager_command(state: LabState) -> list[str]:
    """ryu_dove.app under os-ken 3.1's osken-manager (docs/controller.md): its options given
    on the command line, registered first by --user-flags."""
    manager = Path(state.osken_manager)
    python = manager.with_name("python")
    flags = subprocess.run([str(python), "-c", "import ryu_dove.user_flags as f; "
                            "print(f.__file__)"], capture_output=True, text=True, timeout=60)
    if flags.returncode != 0:
        raise ControllerError(f"{python} cannot import ryu_dove: {flags.stderr.strip()[-300:]}")
    ip = Addressing(state.slot).controller_ip
    cmd = [str(manager), "--user-flags", flags.stdout.strip(), "--ofp-listen-host", ip,
           "--ofp-tcp-listen-port", "6653", "--dove-listen", ip,
           "--dove-state-dir", str(state.dir / "controller-state")]
    for path in state.policy:
        cmd += ["--dove-policy", path]
    tls = [arg.replace("--", "--dove-", 1) for arg in _tls_args(state)]
    return cmd + tls + state.controller_args + ["ryu_dove.app"]


def _tls_args(state: LabState) -> list[str]:
    if not state.tls:
        return ["--plaintext"]
    pki = state.pki.ensure()
    ctl = pki.issue("controller", "controller")
    return ["--ssl-key", str(ctl.key), "--ssl-cert", str(ctl.cert), "--ssl-ca",
            str(pki.switch_ca)]


def running_pid(state: LabState) -> int | None:
    """The controller's pid if it runs (checked against its command line, not just the pid)."""
    pid = read_pid(state.controller_pidfile)
    if pid is None or not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    ours = (b"dove-controller", b"ryu_dove.app")
    return pid if any(mark in part for part in cmdline for mark in ours) else None


def start(state: LabState) -> int:
    if running_pid(state) is not None:
        raise ControllerError(f"the controller of lab {state.name} already runs")
    cmd = state.controller_cmd or controller_command(state)
    state.controller_cmd = cmd
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if state.osken_manager:  # the manager runs apps on eventlet (ryu_dove asks for native)
        env["OSKEN_HUB_TYPE"] = "eventlet"
    with open(state.controller_log, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    state.controller_pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(state: LabState, kill: bool = False, timeout: float = 10.0) -> bool:
    """SIGTERM (or SIGKILL with kill=True) the controller and return once it has exited;
    False if none ran."""
    pid = running_pid(state)
    if pid is None:
        return False
    stop_pid(pid, timeout, sig=signal.SIGKILL if kill else signal.SIGTERM)
    _reap(pid)
    state.controller_pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Started by this process (tests, `up` then `down` in one run), the exited controller is
    our zombie until reaped; started by another dove-lab run, init reaps it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
