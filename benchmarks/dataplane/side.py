"""One lab under test (`dove` or `plain`), what is measured on it, and its controller's API
(in sync, packet-ins)."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import BenchmarkError
from benchmarks.dataplane.base import DST, SRC
from benchmarks.dataplane.parsing import IperfResult
from dove_lab.lab import Lab
from dove_lab.ovs_instance import read_pid
from dove_lab.state import VmState


@dataclass
class Side:
    """One lab measured: `dove` (controller pipeline) or `plain` (the baseline)."""

    label: str
    lab: Lab
    src: VmState
    dst: VmState
    cpu_pids: dict[str, int] = field(default_factory=dict)
    mbps: list[float] = field(default_factory=list)
    runs: list[IperfResult] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    pings_sent: int = 0
    cpu: list[dict[str, Any]] = field(default_factory=list)
    parallel: IperfResult | None = None
    megaflows_hv1: list[int] = field(default_factory=list)
    megaflows_hv2: list[int] = field(default_factory=list)
    packet_ins_before: int | None = None
    packet_ins_after: int | None = None
    connections_per_s: float | None = None


def make_side(label: str, lab: Lab, dst: str = DST) -> Side:
    state = lab.state()
    side = Side(label, lab, state.vms[SRC], state.vms[dst])
    for hv in state.hypervisors.values():
        pid = read_pid(lab.ovs(hv).pidfile("ovs-vswitchd"))
        if pid is None:
            raise BenchmarkError(f"no ovs-vswitchd pid for {hv.name} of lab {lab.name}")
        side.cpu_pids[f"ovs-vswitchd@{hv.name}"] = pid
    ctl = lab.status()["controller"]
    if state.controller and ctl["pid"]:
        side.cpu_pids["dove-controller"] = int(ctl["pid"])
    return side


def api_get(lab: Lab, resource: str) -> Any:
    url = f"{lab.status()['controller']['api']}/v1/{resource}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def wait_in_sync(lab: Lab, timeout: float = 30.0) -> None:
    """Until the controller says every hypervisor has exactly its flows."""
    names = set(lab.state().hypervisors)
    deadline = time.monotonic() + timeout
    while True:
        try:
            hvs = {h["name"]: h for h in api_get(lab, "hypervisors")}
            if names <= hvs.keys() and all(hvs[n]["in_sync"] for n in names):
                return
        except (OSError, ValueError):
            pass  # not answering yet
        if time.monotonic() > deadline:
            raise BenchmarkError(f"lab {lab.name}: hypervisors not in sync with the controller "
                                 f"within {timeout:.0f} s")
        time.sleep(0.1)


def packet_ins(lab: Lab) -> int:
    try:
        return int(api_get(lab, "controller")["packet_ins"])
    except (OSError, ValueError, KeyError) as exc:
        raise BenchmarkError(f"lab {lab.name}: cannot read packet_ins from the controller API: "
                             f"{exc}") from exc
