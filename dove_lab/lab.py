"""A lab: several hypervisors with real OVS and VMs of several tenants on one machine.

Everything here is driven through `Lab` (the CLI is a thin layer over it), so tests and
benchmarks use the same code as operators. State lives in /run/dove-lab/<name>/.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dove_lab import baseline, controller_proc, nodes, shell
from dove_lab.naming import Addressing, LabNames, check_lab_name, mgmt_slots
from dove_lab.ovs_instance import OvsInstance, alive, read_pid
from dove_lab.state import LAB_ROOT, HypervisorState, LabState, VmState, lab_dir
from dove_lab.topology import (
    MAX_HYPERVISORS,
    Topology,
    VmSpec,
    default_mac,
    node_name_problem,
)
from ovsdb_agent.vswitch import VSwitch
from ryu_dove.policy import Policy, load_policy

LOG = logging.getLogger(__name__)
REQUIRED_TOOLS = {"ovs-vswitchd": "openvswitch-switch", "ovsdb-server": "openvswitch-switch",
                  "ip": "iproute2", "ping": "iputils-ping", "ethtool": "ethtool"}


API_PORT = 8080  # the controller's REST API, on the lab's management address
OFP_PORT = 6653


class LabError(RuntimeError):
    """A lab operation could not be done; the message says why and what to do."""


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veths, OVS)")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)} "
                       f"(apt-get install -y {' '.join(missing)})")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
           controller_args: list[str] | None = None) -> LabState:
        """Build the whole lab; on any failure (or Ctrl-C) remove what was built and raise."""
        preflight()
        with _locked(LAB_ROOT / ".lock"):
            if (self.dir / "state.json").exists() or self._leftovers():
                raise LabError(f"lab {self.name!r} exists already "
                               f"(dove-lab down --name {self.name} removes it)")
            state = LabState(name=self.name, slot=self._free_slot(),
                             policy=[str(Path(p).resolve()) for p in policy_paths],
                             controller=controller, controller_args=list(controller_args or []))
            state.save()  # from here on `down` can find everything by name
        try:
            with self._state_lock():
                self._build(state, topology, policy)
            if controller:
                self._wait_connected(list(state.hypervisors.values()), connect_timeout,
                                     controller_proc.running_pid(state))
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
            self._wait_listening(addr.controller_ip, OFP_PORT, pid, timeout=30.0)
        for hv in topology.hypervisors:
            self._add_hypervisor(state, hv)
        self._wire_tunnels(state)
        for spec in topology.vms:
            self._add_vm(state, spec, policy)

    def down(self) -> list[str]:
        """Remove everything this lab created, whatever state it is in. Idempotent."""
        removed: list[str] = []
        self.close()
        state = LabState.load(self.name)
        if state is not None:
            if controller_proc.stop(state):
                removed.append("controller")
            for hv in state.hypervisors.values():
                OvsInstance(hv.netns, Path(hv.ovs_dir)).stop()
        for ns in nodes.netns_list():
            if ns.startswith(self.names.netns_prefix):
                nodes.delete_netns(ns)
                removed.append(f"netns {ns}")
        for link in _root_links():
            if self.names.owns_root_link(link):
                shell.run(["ip", "link", "del", link], check=False)
                removed.append(f"link {link}")
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            removed.append(f"dir {self.dir}")
        return removed

    def _leftovers(self) -> bool:
        return any(ns.startswith(self.names.netns_prefix) for ns in nodes.netns_list()) or any(
            self.names.owns_root_link(link) for link in _root_links())

    def _free_slot(self) -> int:
        used = set()
        for d in LAB_ROOT.iterdir() if LAB_ROOT.exists() else []:
            if d.name != self.name and (d / "state.json").exists():
                other = LabState.load(d.name)
                if other is not None:
                    used.add(other.slot)
        in_use = shell.run(["ip", "-o", "-4", "addr", "show"])
        for slot, net in enumerate(mgmt_slots()):
            if slot not in used and str(net.network_address + 1) + "/" not in in_use:
                return slot
        raise LabError(f"all {len(mgmt_slots())} management slots of 203.0.113.0/25 are in use: "
                       "take a lab down first")

    @contextmanager
    def _state_lock(self) -> Iterator[None]:
        with _locked(self.dir / ".lock"):
            yield

    def state(self) -> LabState:
        state = LabState.load(self.name)
        if state is None:
            raise LabError(f"lab {self.name!r} is not up (dove-lab up --name {self.name} ...)")
        return state

    # --- hypervisors -----------------------------------------------------------------------

    def ovs(self, hv: HypervisorState) -> OvsInstance:
        return OvsInstance(hv.netns, Path(hv.ovs_dir))

    def add_hypervisor(self, name: str) -> HypervisorState:
        why = node_name_problem(name)
        if why:
            raise LabError(why)
        with self._state_lock():
            state = self.state()
            if name in state.hypervisors or name in state.vms:
                raise LabError(f"lab {self.name!r} has a node named {name!r} already")
            if len(state.hypervisors) >= MAX_HYPERVISORS:
                raise LabError(f"a lab holds at most {MAX_HYPERVISORS} hypervisors")
            hv = self._add_hypervisor(state, name)
            self._wire_tunnels(state)
        if state.controller:
            self._wait_connected([hv], timeout=30.0)
        return hv

    def _add_hypervisor(self, state: LabState, name: str) -> HypervisorState:
        addr = Addressing(state.slot)
        index = state.free_hv_index()
        hv = HypervisorState(name=name, index=index, netns=self.names.netns(name),
                             tep_ip=addr.tep_ip(index), mgmt_ip=addr.hv_mgmt_ip(index),
                             ovs_dir=str(self.dir / "hv" / name))
        state.hypervisors[name] = hv
        state.save()
        nodes.create_hypervisor(self.names, addr, hv, controller=state.controller)
        return hv

    def del_hypervisor(self, name: str) -> list[str]:
        """Remove a hypervisor and the VMs on it; returns the VMs removed with it."""
        with self._state_lock():
            state = self.state()
            hv = state.hypervisors.get(name)
            if hv is None:
                raise LabError(f"no hypervisor {name!r} in lab {self.name!r}")
            gone = [vm.name for vm in state.vms.values() if vm.hypervisor == name]
            for vm_name in gone:
                nodes.delete_vm(state.vms.pop(vm_name), None)
            self._forget_vswitch(name)
            nodes.delete_hypervisor(self.names, hv)
            del state.hypervisors[name]
            state.save()
            self._wire_tunnels(state)
        return gone

    def _wire_tunnels(self, state: LabState) -> None:
        """Underlay ARP for every TEP, and in baseline mode the full tunnel mesh."""
        for hv in state.hypervisors.values():
            peers = [p for p in state.hypervisors.values() if p.name != hv.name]
            ovs = self.ovs(hv)
            nodes.warm_tunnel_neighbours(ovs, [(p.tep_ip, Addressing.tep_mac(p.index))
                                               for p in peers])
            if not state.controller:
                baseline.program_mesh(ovs, {p.name: p.tep_ip for p in peers})

    # --- VMs ---------------------------------------------------------------------------------

    def add_vm(self, name: str, hypervisor: str, network: str, ip: str,
               mac: str | None = None) -> VmState:
        policy = self._policy()
        spec = VmSpec(name, hypervisor, network, ip, (mac or default_mac(network, name)).lower())
        with self._state_lock():
            state = self.state()
            self._check_new_vm(state, spec, policy)
            return self._add_vm(state, spec, policy)

    def _check_new_vm(self, state: LabState, spec: VmSpec, policy: Policy) -> None:
        why = node_name_problem(spec.name)
        net = policy.network(spec.network)
        if why:
            raise LabError(why)
        if spec.name in state.vms or spec.name in state.hypervisors:
            raise LabError(f"lab {self.name!r} has a node named {spec.name!r} already")
        if spec.hypervisor not in state.hypervisors:
            raise LabError(f"no hypervisor {spec.hypervisor!r} in lab {self.name!r}")
        if net is None:
            raise LabError(f"unknown network {spec.network!r} (tenant/network of the policy)")
        why = net.host_problem(spec.ip)
        if why:
            raise LabError(why)
        for other in state.vms.values():
            if other.network == spec.network and other.ip == str(ipaddress.ip_address(spec.ip)):
                raise LabError(f"{spec.ip} is already {other.name}'s address on {spec.network}")

    def _add_vm(self, state: LabState, spec: VmSpec, policy: Policy) -> VmState:
        net = policy.network(spec.network)
        assert net is not None  # checked by the topology or _check_new_vm
        hv = state.hypervisors[spec.hypervisor]
        vm = VmState(name=spec.name, hypervisor=spec.hypervisor, network=spec.network,
                     ip=str(ipaddress.ip_address(spec.ip)), prefixlen=net.subnet.prefixlen,
                     gateway=str(net.gateway), mac=spec.mac, netns=self.names.netns(spec.name),
                     port=nodes.vif_port(spec.name))
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

    def _policy(self) -> Policy:
        return load_policy(self.state().policy)

    # --- controller ------------------------------------------------------------------------

    def controller_start(self, timeout: float = 30.0) -> int:
        with self._state_lock():
            state = self.state()
            if not state.controller:
                raise LabError(f"lab {self.name!r} runs the --no-controller baseline")
            pid = self._start_controller(state)
        self._wait_connected(list(state.hypervisors.values()), timeout, pid)
        return pid

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

    def _controller_hypervisors(self) -> dict[str, dict[str, Any]]:
        url = f"http://{Addressing(self.state().slot).controller_ip}:{API_PORT}/v1/hypervisors"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return {h["name"]: h for h in json.load(resp)}
        except (OSError, ValueError):
            return {}  # not answering yet

    def _wait_listening(self, host: str, port: int, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((host, port)) == 0:
                    return
            if not alive(pid):
                raise LabError(f"the controller exited. {self._log_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"the controller did not listen on {host}:{port} within "
                               f"{timeout:.0f} s. {self._log_tail()}")
            time.sleep(0.05)

    def _wait_connected(self, hvs: list[HypervisorState], timeout: float,
                        pid: int | None = None) -> None:
        """Wait until the controller has every listed hypervisor on OVSDB and OpenFlow.

        Asked of the controller itself (its API): OVS refreshes the is_connected column of
        its Controller rows only every few seconds.
        """
        deadline = time.monotonic() + timeout
        waiting = {hv.name for hv in hvs}
        while waiting:
            seen = self._controller_hypervisors()
            waiting = {n for n in waiting
                       if not (seen.get(n, {}).get("openflow") and seen.get(n, {}).get("ovsdb"))}
            if not waiting:
                return
            if pid is not None and not alive(pid):
                raise LabError(f"the controller exited. {self._log_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"hypervisors {sorted(waiting)} did not connect to the controller "
                               f"within {timeout:.0f} s. {self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self, lines: int = 15) -> str:
        """The end of the controller's log, quoted: a failed `up` removes the file itself."""
        log = self.state().controller_log
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {log})"
        return "Its log ends:\n  " + "\n  ".join(tail)

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
                           "api": f"http://{addr.controller_ip}:{API_PORT}",
                           "pid": pid, "log": str(state.controller_log),
                           "command": state.controller_cmd},
            "management": str(addr.mgmt_net),
            "hypervisors": {hv.name: {
                "netns": hv.netns, "tep_ip": hv.tep_ip, "mgmt_ip": hv.mgmt_ip,
                "ovsdb": self.ovs(hv).db,
                "ovs_running": self._ovs_running(hv),
            } for hv in state.hypervisors.values()},
            "vms": {vm.name: {"hypervisor": vm.hypervisor, "network": vm.network, "ip": vm.ip,
                              "mac": vm.mac, "netns": vm.netns, "port": vm.port}
                    for vm in state.vms.values()},
        }

    def _ovs_running(self, hv: HypervisorState) -> bool:
        ovs = self.ovs(hv)
        pids = [read_pid(ovs.pidfile(d)) for d in ("ovsdb-server", "ovs-vswitchd")]
        return all(p is not None and alive(p) for p in pids)


def _root_links() -> list[str]:
    out = shell.run(["ip", "-o", "link", "show"])
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
