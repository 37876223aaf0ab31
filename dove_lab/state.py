"""What a running lab is made of, kept as JSON in the lab's folder between dove-lab commands."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dove_lab.naming import DEFAULT_LAB, LabNames, check_lab_name
from dove_lab.pki import Pki

LAB_ROOT = Path(os.environ.get("DOVE_LAB_ROOT", "/run/dove-lab"))


def lab_dir(name: str) -> Path:
    return LAB_ROOT / check_lab_name(name)


@dataclass
class HypervisorState:
    name: str
    index: int
    netns: str
    tep_ip: str
    mgmt_ip: str
    ovs_dir: str
    partitioned: list[str] = field(default_factory=list)  # channels cut (dove-lab partition)


@dataclass
class VmState:
    name: str
    hypervisor: str
    network: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    netns: str
    port: str
    # "dove": plugged with the binding contract's keys; "libvirt": as libvirt plugs a port
    # (iface-id, attached-mac, iface-status, vm-id only), bound by a policy port mapping;
    # "learn": the contract's keys but dove-ips (its address is learned from its packets)
    plug: str = "dove"
    iface_id: str = ""  # the Interface's iface-id; the VM's name when empty


@dataclass
class LabState:
    name: str = DEFAULT_LAB
    slot: int = 0
    policy: list[str] = field(default_factory=list)
    controller: bool = True  # False: --no-controller baseline (standalone OVS, full mesh)
    controller_cmd: list[str] = field(default_factory=list)
    controller_args: list[str] = field(default_factory=list)  # extra dove-controller options
    # An os-ken <= 3.1 osken-manager to launch ryu_dove.app with instead of dove-controller
    osken_manager: str = ""
    tls: bool = True  # OpenFlow and OVSDB over mutual TLS, certificates from the lab's PKI
    hypervisors: dict[str, HypervisorState] = field(default_factory=dict)
    vms: dict[str, VmState] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    @property
    def names(self) -> LabNames:
        return LabNames(self.name)

    @property
    def pki(self) -> Pki:
        return Pki(self.dir / "pki")

    @property
    def controller_log(self) -> Path:
        return self.dir / "controller.log"

    @property
    def controller_pidfile(self) -> Path:
        return self.dir / "controller.pid"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, name: str) -> LabState | None:
        try:
            raw: dict[str, Any] = json.loads((lab_dir(name) / "state.json").read_text())
        except FileNotFoundError:
            return None
        raw["hypervisors"] = {k: HypervisorState(**v) for k, v in raw["hypervisors"].items()}
        raw["vms"] = {k: VmState(**v) for k, v in raw["vms"].items()}
        return cls(**raw)

    def free_hv_index(self) -> int:
        used = {hv.index for hv in self.hypervisors.values()}
        return next(i for i in range(1, len(used) + 2) if i not in used)
