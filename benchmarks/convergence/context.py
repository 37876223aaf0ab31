"""One lab, up with its controller and the prober, as every phase of a run sees it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.convergence.base import BenchError
from benchmarks.convergence.controller import Api, synced_check, wait_until
from benchmarks.convergence.vms import Vm
from benchmarks.probe_icmp import IcmpProber, Session
from dove_lab.lab import Lab
from dove_lab.state import HypervisorState
from ryu_dove.policy import Policy


@dataclass(frozen=True)
class Bench:
    lab: Lab
    policy: Policy
    api: Api
    hv_names: list[str]
    hypervisors: dict[str, HypervisorState]  # the lab's, by name
    controller_pid: int
    controller_log: str
    prober: IcmpProber
    timeout: float  # seconds to wait for reachability in each phase
    keep_logs: Path | None
    log: Callable[[str], None]

    def wait_synced(self) -> None:
        wait_until("hypervisors in sync", 30, synced_check(self.api, self.hv_names))

    def wait_session(self, session: Session, what: str) -> None:
        if session.wait(self.timeout):
            return
        left = session.unanswered()
        where = (f"the controller's log is kept in {self.keep_logs}" if self.keep_logs
                 else "--keep-logs DIR keeps the controller's log")
        raise BenchError(f"no reply within {self.timeout:g} s of binding for "
                         f"{len(left)} pair(s) waiting for {what}, e.g. "
                         f"{', '.join(f'{a}->{b}' for a, b in left[:6])}; {where}")

    def is_lab_ovs(self, _pid: int, cmd: str) -> bool:
        """This lab's OVS daemons (the controller and this process are counted apart)."""
        return f"{self.lab.dir}/" in cmd


def pairs_of(vms: list[Vm], same: bool) -> list[tuple[Vm, Vm]]:
    """Ordered pairs of VMs in the same network (`same`) or in different ones."""
    return [(a, b) for a, b in itertools.permutations(vms, 2)
            if (a.state.network == b.state.network) == same]
