"""Waiting for the lab's controller: listening, every hypervisor connected and in sync, a
hypervisor forgotten after it left.

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
                   pid: int | None = None, whole_lab: bool = False) -> None:
    """Wait until the controller has every listed hypervisor on OVSDB and OpenFlow, each
    switch holding exactly its desired flows, and (whole_lab: every hypervisor it knows is
    listed) until it calls itself synchronised."""
    deadline = time.monotonic() + timeout
    names = sorted(hv.name for hv in hvs)
    while True:
        lagging = lagging_hypervisors(_get(state, "hypervisors") or [], names)
        synchronised = not whole_lab or bool((_get(state, "controller") or {}).get(
            "synchronised"))
        if not lagging and synchronised:
            return
        if pid is not None and not alive(pid):
            raise LabError(f"the controller exited. {log_tail(state)}")
        if time.monotonic() > deadline:
            raise LabError(f"{not_in_sync(lagging, timeout)}. {log_tail(state)}")
        time.sleep(0.1)


def lagging_hypervisors(seen: list[dict[str, Any]], names: list[str]) -> dict[str, str]:
    """Of `names`, the hypervisors the controller's /v1/hypervisors items do not show
    connected on both channels and in sync, each with what it lacks."""
    items = {h.get("name"): h for h in seen if isinstance(h, dict)}
    lagging = {}
    for name in names:
        item = items.get(name)
        if item is None:
            lagging[name] = "not known to the controller"
            continue
        lacks = [what for key, what in (("ovsdb", "OVSDB not connected"),
                                        ("openflow", "OpenFlow not connected"),
                                        ("in_sync", "flows not in sync")) if not item.get(key)]
        if lacks:
            state = item.get("state")
            lagging[name] = ", ".join(lacks) + (f", state {state}" if state else "")
    return lagging


def not_in_sync(lagging: dict[str, str], timeout: float) -> str:
    """Why a wait for the controller failed, hypervisor by hypervisor (none lagging: the
    controller itself did not call itself synchronised)."""
    if lagging:
        return (f"after {timeout:.0f} s, hypervisors still not in sync with the controller: "
                + "; ".join(f"{name} ({why})" for name, why in sorted(lagging.items())))
    return (f"after {timeout:.0f} s, the controller still does not call itself synchronised "
            "(every hypervisor waited for is in sync)")


def wait_forgotten(state: LabState, name: str, timeout: float) -> bool:
    """Wait until the controller's API no longer lists hypervisor `name`; False if it still
    does (or does not answer) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        seen = _get(state, "hypervisors")
        if isinstance(seen, list) and not any(h.get("name") == name for h in seen):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _get(state: LabState, resource: str) -> Any:
    """GET /v1/<resource> from the controller's API; None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"{api_url(state)}/v1/{resource}", timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def log_tail(state: LabState, lines: int = 15) -> str:
    """The end of the controller's log, quoted."""
    log = state.controller_log
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {log})"
    return "Its log ends:\n  " + "\n  ".join(tail)


def wait_endpoint(state: LabState, iface_id: str, hypervisor: str, standby: bool,
                  timeout: float) -> float | None:
    """Wait until the controller shows iface_id's port on `hypervisor` (standby or active);
    the seconds it took, or None at the deadline."""
    started = time.monotonic()
    while True:
        seen = _get(state, "endpoints")
        if isinstance(seen, list) and any(
                e.get("iface_id") == iface_id and e.get("hypervisor") == hypervisor
                and e.get("standby") is standby for e in seen):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.01)
