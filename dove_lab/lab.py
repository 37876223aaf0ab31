"""A lab: several hypervisors with real OVS and VMs of several tenants on one machine.

Everything here is driven through `Lab` (the CLI is a thin layer over it), so tests and
benchmarks use the same code as operators. State lives in /run/dove-lab/<name>/.
`Lab` takes the locks and keeps the state; the work is done by the modules of each concern:
`host` (the machine), `hypervisors`, `vms`, `partitions`, `controller_proc` and
`controller_watch`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dove_lab import (
    controller_proc,
    host,
    hypervisors,
    migration,
    nodes,
    partitions,
    shell,
    vms,
)
from dove_lab.controller_watch import (
    API_PORT,
    OFP_PORT,
    api_url,
    wait_connected,
    wait_endpoint,
    wait_forgotten,
    wait_listening,
)
from dove_lab.errors import LabError
from dove_lab.host import REQUIRED_TOOLS, preflight
from dove_lab.naming import Addressing, LabNames, check_lab_name
from dove_lab.ovs_instance import OvsInstance
from dove_lab.state import LAB_ROOT, HypervisorState, LabState, VmState, lab_dir
from dove_lab.topology import Topology, VmSpec, default_mac, node_name_problem
from ovsdb_agent import contract
from ovsdb_agent.join import leave
from ovsdb_agent.vswitch import VSwitch
from ryu_dove.policy import Policy, load_policy

__all__ = ["API_PORT", "OFP_PORT", "REQUIRED_TOOLS", "Lab", "LabError", "preflight"]

LOG = logging.getLogger(__name__)


class Lab:
    def __init__(self, name: str) -> None:
        self.name = check_lab_name(name)
        self.names = LabNames(self.name)
        self.dir = lab_dir(self.name)
        # One OVSDB connection per hypervisor, kept while this object lives: opening one
        # costs ~0.1 s (python-ovs parses the schema and the database in pure Python).
        self._vswitches: dict[str, VSwitch] = {}

    def vswitch(self, hv: HypervisorState) -> VSwitch:
        if hv.name not in self._vswitches:
            self._vswitches[hv.name] = VSwitch(self.ovs(hv).db)
        return self._vswitches[hv.name]

    def _forget_vswitch(self, name: str) -> None:
        vswitch = self._vswitches.pop(name, None)
        if vswitch is not None:
            vswitch.close()

    def close(self) -> None:
        for name in list(self._vswitches):
            self._forget_vswitch(name)

    # --- life cycle -------------------------------------------------------------------------

    def up(self, topology: Topology, policy_paths: list[str], policy: Policy,
           controller: bool = True, connect_timeout: float = 30.0,
           controller_args: list[str] | None = None, tls: bool = True,
           osken_manager: str = "") -> LabState:
        """Build the whole lab; on any failure (or Ctrl-C) remove what was built and raise."""
        preflight()
        with host.locked(LAB_ROOT / ".lock"):
            if (self.dir / "state.json").exists() or host.leftovers(self.names):
                raise LabError(f"lab {self.name!r} exists already "
                               f"(dove-lab down --name {self.name} removes it)")
            state = LabState(name=self.name, slot=host.free_slot(self.name),
                             policy=[str(Path(p).resolve()) for p in policy_paths],
                             controller=controller, controller_args=list(controller_args or []),
                             tls=tls, osken_manager=osken_manager)
            state.save()  # from here on `down` can find everything by name
        try:
            with self._state_lock():
                self._build(state, topology, policy)
            if controller:
                self._wait_in_sync(state, connect_timeout, controller_proc.running_pid(state))
        except BaseException as exc:
            self.down()
            if isinstance(exc, LabError | shell.CommandFailed | OSError | RuntimeError):
                raise LabError(f"lab {self.name!r} did not come up: {exc}; "
                               "everything it had created was removed") from exc
            raise
        return state

    def _build(self, state: LabState, topology: Topology, policy: Policy) -> None:
        addr = Addressing(state.slot)
        nodes.create_underlay(self.names)
        nodes.create_mgmt_bridge(self.names, addr)
        if state.controller:  # listening before the hypervisors join: no connect backoff
            pid = self._start_controller(state)
            wait_listening(state, pid, timeout=30.0)
        for hv in topology.hypervisors:
            hypervisors.add(state, hv)
        hypervisors.wire_tunnels(state)
        for spec in topology.vms:
            self._add_vm(state, spec, policy)

    def down(self) -> list[str]:
        """Remove everything this lab created, whatever state it is in, and return once every
        process it started has exited. Idempotent."""
        removed: list[str] = []
        self.close()
        state = LabState.load(self.name)
        if state is not None:
            if controller_proc.stop(state):
                removed.append("controller")
            for hv in state.hypervisors.values():
                self.ovs(hv).stop()
        removed += host.remove_leftovers(self.names)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            removed.append(f"dir {self.dir}")
        return removed

    @contextmanager
    def _state_lock(self) -> Iterator[None]:
        with host.locked(self.dir / ".lock"):
            yield

    def state(self) -> LabState:
        state = LabState.load(self.name)
        if state is None:
            raise LabError(f"lab {self.name!r} is not up (dove-lab up --name {self.name} ...)")
        return state

    def _hypervisor(self, state: LabState, name: str) -> HypervisorState:
        hv = state.hypervisors.get(name)
        if hv is None:
            raise LabError(f"no hypervisor {name!r} in lab {self.name!r}")
        return hv

    # --- hypervisors -----------------------------------------------------------------------

    def ovs(self, hv: HypervisorState) -> OvsInstance:
        return hypervisors.ovs_of(hv)

    def add_hypervisor(self, name: str) -> HypervisorState:
        why = node_name_problem(name)
        if why:
            raise LabError(why)
        with self._state_lock():
            state = self.state()
            hypervisors.check_new(state, name)
            hv = hypervisors.add(state, name)
            hypervisors.wire_tunnels(state)
        if state.controller:
            wait_connected(state, [hv], 30.0, controller_proc.running_pid(state))
        return hv

    def del_hypervisor(self, name: str, forget_timeout: float = 10.0) -> list[str]:
        """Remove a hypervisor and the VMs on it; returns the VMs removed with it. With a
        controller, the hypervisor first leaves it (dove-join --leave), so the controller
        forgets it now rather than after its expiry. Its OVS database goes too: a hypervisor
        added later under the same name starts empty."""
        with self._state_lock():
            state = self.state()
            hv = self._hypervisor(state, name)
            if state.controller and hypervisors.ovs_running(hv):
                self._leave(state, hv, forget_timeout)
            self._forget_vswitch(name)
            gone = hypervisors.remove(state, hv)
            hypervisors.wire_tunnels(state)
        return gone

    def _leave(self, state: LabState, hv: HypervisorState, timeout: float) -> None:
        leave(self.vswitch(hv))
        if controller_proc.running_pid(state) is None:
            return  # no controller to wait for
        if not wait_forgotten(state, hv.name, timeout):
            LOG.warning("the controller still lists hypervisor %s %.0f s after it left (cut "
                        "off by a partition?); it will forget it after its expiry",
                        hv.name, timeout)

    # --- partitions ----------------------------------------------------------------------

    def partition(self, name: str, channel: str = partitions.ALL) -> list[str]:
        """Cut a hypervisor off the controller: `all` its management link, `openflow` or
        `ovsdb` that channel alone. Returns what was newly cut (empty: cut already)."""
        return self._set_cut(name, channel, cut=True)

    def heal(self, name: str, channel: str = partitions.ALL) -> list[str]:
        """Undo `partition` of that channel (`all`: the link) only; other cuts stay. Returns
        what was healed (empty: it was not cut)."""
        return self._set_cut(name, channel, cut=False)

    def _set_cut(self, name: str, channel: str, cut: bool) -> list[str]:
        if channel not in partitions.CHOICES:
            raise LabError(f"unknown channel {channel!r}: one of {', '.join(partitions.CHOICES)}")
        with self._state_lock():
            state = self.state()
            hv = self._hypervisor(state, name)
            before = set(hv.partitioned)
            after = (before | {channel}) if cut else (before - {channel})
            changed = partitions.ordered(before ^ after)
            if changed:
                hv.partitioned = partitions.ordered(after)
                partitions.apply(hv.netns, state.names.mgmt_veth(hv.index), hv.partitioned,
                                 Addressing(state.slot).controller_ip)
                state.save()
            return changed

    # --- VMs ---------------------------------------------------------------------------------

    def add_vm(self, name: str, hypervisor: str, network: str, ip: str,
               mac: str | None = None, libvirt: bool = False, iface_id: str = "",
               learn: bool = False) -> VmState:
        """Plug a new VM. With `libvirt`, its port carries only what libvirt writes (the
        policy's port mappings must bind it); with `learn`, no dove-ips (the controller
        learns the address); `network` and `ip` still configure the VM."""
        if libvirt and learn:
            raise LabError("--libvirt ports learn their addresses already; not both")
        policy = load_policy(self.state().policy)
        spec = VmSpec(name, hypervisor, network, ip, (mac or default_mac(network, name)).lower(),
                      "libvirt" if libvirt else "learn" if learn else "dove", iface_id)
        with self._state_lock():
            state = self.state()
            vms.check_new(state, spec, policy)
            return self._add_vm(state, spec, policy)

    def _add_vm(self, state: LabState, spec: VmSpec, policy: Policy) -> VmState:
        vm = vms.vm_state(spec, policy, state.names.netns(spec.name))
        hv = state.hypervisors[spec.hypervisor]
        state.vms[vm.name] = vm
        state.save()
        nodes.create_vm(vm, hv.netns, self.vswitch(hv), nodes.vif_ids(vm))
        return vm

    def del_vm(self, name: str) -> None:
        with self._state_lock():
            state = self.state()
            vm = state.vms.get(name)
            if vm is None:
                raise LabError(f"no VM {name!r} in lab {self.name!r}")
            nodes.delete_vm(vm, self.vswitch(state.hypervisors[vm.hypervisor]))
            del state.vms[name]
            state.save()

    def migrate_vm(self, name: str, to: str, timeout: float = 10.0) -> dict[str, float | None]:
        """Move a VM to another hypervisor as a live migration does (dove_lab.migration):
        plug the destination port, wait (with a controller) until it stands by, switch the
        VM over and let it announce itself, wait until the move took effect, unplug the
        source. Returns the seconds each wait took (None: no controller to wait for)."""
        with self._state_lock():
            state = self.state()
            vm = state.vms.get(name)
            if vm is None:
                raise LabError(f"no VM {name!r} in lab {self.name!r}")
            dst, src = state.hypervisors.get(to), state.hypervisors[vm.hypervisor]
            if dst is None:
                raise LabError(f"no hypervisor {to!r} in lab {self.name!r}")
            if dst.name == src.name:
                raise LabError(f"{name} is on {to} already")
            iface_id = nodes.vif_ids(vm)[contract.IFACE_ID]
            migration.prepare(vm, dst.netns, self.vswitch(dst), nodes.vif_ids(vm))
            waits: dict[str, float | None] = {"standby_s": None, "active_s": None}
            try:
                if state.controller:
                    waits["standby_s"] = self._wait_endpoint(state, iface_id, to, True,
                                                             timeout)
                    # A real migration copies memory for seconds meanwhile: the
                    # destination's flows are in place when the VM resumes there.
                    wait_connected(state, [dst], timeout)
            except LabError:  # the migration is abandoned: the VM stays at the source
                migration.finish(vm, dst.netns, self.vswitch(dst))
                raise
            with migration.Announcer(vm) as announce:
                migration.switch_over(vm, announce)
            if state.controller:
                waits["active_s"] = self._wait_endpoint(state, iface_id, to, False, timeout)
            migration.finish(vm, src.netns, None if src.partitioned else self.vswitch(src))
            vm.hypervisor = to
            state.save()
            return waits

    @staticmethod
    def _wait_endpoint(state: LabState, iface_id: str, hv: str, standby: bool,
                       timeout: float) -> float:
        took = wait_endpoint(state, iface_id, hv, standby, timeout)
        if took is None:
            role = "standing by" if standby else "active"
            raise LabError(f"the controller did not show {iface_id}'s port on {hv} {role} "
                           f"within {timeout:.0f} s")
        return took

    # --- controller ------------------------------------------------------------------------

    def controller_start(self, timeout: float = 30.0) -> int:
        with self._state_lock():
            state = self.state()
            if not state.controller:
                raise LabError(f"lab {self.name!r} runs the --no-controller baseline")
            pid = self._start_controller(state)
        self._wait_in_sync(state, timeout, pid)
        return pid

    @staticmethod
    def _wait_in_sync(state: LabState, timeout: float, pid: int | None) -> None:
        """Every hypervisor connected with exactly its flows and the controller synchronised;
        hypervisors cut off by `partition` are not waited for (and while one is, the
        controller cannot call itself synchronised)."""
        reachable = [hv for hv in state.hypervisors.values() if not hv.partitioned]
        wait_connected(state, reachable, timeout, pid,
                       whole_lab=len(reachable) == len(state.hypervisors))

    def _start_controller(self, state: LabState) -> int:
        try:
            pid = controller_proc.start(state)
        except controller_proc.ControllerError as exc:
            raise LabError(str(exc)) from exc
        state.save()
        return pid

    def controller_reload(self) -> None:
        """SIGHUP: the controller re-reads its policy (and keeps the old one if it is bad)."""
        pid = controller_proc.running_pid(self.state())
        if pid is None:
            raise LabError(f"the controller of lab {self.name!r} is not running")
        os.kill(pid, signal.SIGHUP)

    def controller_stop(self, kill: bool = False) -> bool:
        with self._state_lock():
            return controller_proc.stop(self.state(), kill=kill)

    # --- looking at it -------------------------------------------------------------------------

    def node_netns(self, node: str) -> str:
        state = self.state()
        if node in state.vms:
            return state.vms[node].netns
        if node in state.hypervisors:
            return state.hypervisors[node].netns
        raise LabError(f"no VM or hypervisor {node!r} in lab {self.name!r}")

    def status(self) -> dict[str, Any]:
        state = self.state()
        addr = Addressing(state.slot)
        pid = controller_proc.running_pid(state)
        return {
            "name": state.name,
            "dir": str(self.dir),
            "mode": "controller" if state.controller else "baseline (no controller)",
            "policy": state.policy,
            "controller": {"address": addr.controller_ip, "running": pid is not None,
                           "tls": state.tls,
                           "api": api_url(state),
                           "pid": pid, "log": str(state.controller_log),
                           "command": state.controller_cmd},
            "management": str(addr.mgmt_net),
            "hypervisors": {hv.name: {
                "netns": hv.netns, "tep_ip": hv.tep_ip, "mgmt_ip": hv.mgmt_ip,
                "ovsdb": self.ovs(hv).db,
                "ovs_running": hypervisors.ovs_running(hv),
                "partitioned": hv.partitioned,
            } for hv in state.hypervisors.values()},
            "vms": {vm.name: {"hypervisor": vm.hypervisor, "network": vm.network, "ip": vm.ip,
                              "mac": vm.mac, "netns": vm.netns, "port": vm.port}
                    for vm in state.vms.values()},
        }
