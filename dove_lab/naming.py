"""Names and addresses of everything a lab creates, derived from the lab name alone.

Every namespace is `dove-<lab>.<node>` and every link in the root namespace is `dl-<lab>` or
`dl-<lab>-<n>`; lab names cannot contain '.' or '-', so `down` finds exactly what its lab
made by name, even after a crash, and nothing else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LAB_NAME = re.compile(r"^[a-z0-9]{1,8}$")
DEFAULT_LAB = "dove"
MGMT_RANGE = ipaddress.ip_network("203.0.113.0/25")
MGMT_SLOT_PREFIX = 27  # 4 labs side by side, 29 hypervisors each
UNDERLAY = ipaddress.ip_network("192.0.2.0/24")  # inside the lab's own underlay namespace
VM_MTU = 1450  # VXLAN adds 50 bytes to a 1500-byte underlay
VIF_PREFIX = "vif-"


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise ValueError(f"bad lab name {name!r}: 1-8 lowercase letters or digits")
    return name


def mgmt_slots() -> list[ipaddress.IPv4Network]:
    return list(MGMT_RANGE.subnets(new_prefix=MGMT_SLOT_PREFIX))  # type: ignore[arg-type]


@dataclass(frozen=True)
class LabNames:
    lab: str

    @property
    def netns_prefix(self) -> str:
        return f"dove-{self.lab}."

    def netns(self, node: str) -> str:
        return f"{self.netns_prefix}{node}"

    @property
    def underlay_netns(self) -> str:
        return self.netns("underlay")  # reserved: no hypervisor or VM may be named so

    @property
    def mgmt_bridge(self) -> str:
        return f"dl-{self.lab}"

    def mgmt_veth(self, index: int) -> str:
        return f"dl-{self.lab}-{index}"

    def owns_root_link(self, ifname: str) -> bool:
        return ifname == self.mgmt_bridge or ifname.startswith(self.mgmt_bridge + "-")


@dataclass(frozen=True)
class Addressing:
    """Management and underlay addresses of one lab (slot = its /27 of the management range)."""

    slot: int

    @property
    def mgmt_net(self) -> ipaddress.IPv4Network:
        return mgmt_slots()[self.slot]

    @property
    def controller_ip(self) -> str:
        return str(self.mgmt_net.network_address + 1)

    def hv_mgmt_ip(self, index: int) -> str:
        return str(self.mgmt_net.network_address + 1 + index)

    def tep_ip(self, index: int) -> str:
        return str(UNDERLAY.network_address + index)

    @staticmethod
    def tep_mac(index: int) -> str:
        return f"02:d0:00:00:{index // 256:02x}:{index % 256:02x}"
