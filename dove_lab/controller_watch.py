"""Waiting for the lab's controller: listening, then every hypervisor connected.

Asked of the controller itself (its REST API): OVS refreshes the is_connected column of its
Controller rows only every few seconds. A failed wait quotes the end of the controller's
log, because a failed `up` removes the log file itself.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any

from dove_lab.errors import LabError
from dove_lab.naming import Addressing
from dove_lab.ovs_instance import alive
from dove_lab.state import HypervisorState, LabState

API_PORT = 8080  # the controller's REST API, on the lab's management address
OFP_PORT = 6653


def api_url(state: LabState) -> str:
    return f"http://{Addressing(state.slot).controller_ip}:{API_PORT}"


def wait_listening(state: LabState, pid: int, timeout: float) -> None:
    """Wait until the controller accepts OpenFlow connections on the management address."""
    host, port = Addressing(state.slot).controller_ip, OFP_PORT
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        if not alive(pid):
            raise LabError(f"the controller exited. {log_tail(state)}")
        if time.monotonic() > deadline:
            raise LabError(f"the controller did not listen on {host}:{port} within "
                           f"{timeout:.0f} s. {log_tail(state)}")
        time.sleep(0.05)


def wait_connected(state: LabState, hvs: list[HypervisorState], timeout: float,
                   pid: int | None = None) -> None:
    """Wait until the controller has every listed hypervisor on OVSDB and OpenFlow."""
    deadline = time.monotonic() + timeout
    waiting = {hv.name for hv in hvs}
    while waiting:
        seen = _hypervisors_seen(state)
        waiting = {n for n in waiting
                   if not (seen.get(n, {}).get("openflow") and seen.get(n, {}).get("ovsdb"))}
        if not waiting:
            return
        if pid is not None and not alive(pid):
            raise LabError(f"the controller exited. {log_tail(state)}")
        if time.monotonic() > deadline:
            raise LabError(f"hypervisors {sorted(waiting)} did not connect to the controller "
                           f"within {timeout:.0f} s. {log_tail(state)}")
        time.sleep(0.1)


def _hypervisors_seen(state: LabState) -> dict[str, dict[str, Any]]:
    """The controller's hypervisors by name, as its API lists them; empty if it does not
    answer yet."""
    try:
        with urllib.request.urlopen(f"{api_url(state)}/v1/hypervisors", timeout=2) as resp:
            return {h["name"]: h for h in json.load(resp)}
    except (OSError, ValueError):
        return {}  # not answering yet


def log_tail(state: LabState, lines: int = 15) -> str:
    """The end of the controller's log, quoted."""
    log = state.controller_log
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {log})"
    return "Its log ends:\n  " + "\n  ".join(tail)
