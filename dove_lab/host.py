"""The machine labs run on: root and tools, locks, management slots, what a lab left behind."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dove_lab import nodes, shell
from dove_lab.errors import LabError
from dove_lab.naming import LabNames, mgmt_slots
from dove_lab.state import LAB_ROOT, LabState

REQUIRED_TOOLS = {"ovs-vswitchd": "openvswitch-switch", "ovsdb-server": "openvswitch-switch",
                  "ip": "iproute2", "ping": "iputils-ping", "ethtool": "ethtool",
                  "nft": "nftables"}


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veths, OVS)")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)} "
                       f"(apt-get install -y {' '.join(missing)})")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def free_slot(lab: str) -> int:
    """A management slot no other lab's state claims and no interface of this host uses."""
    used = set()
    for d in LAB_ROOT.iterdir() if LAB_ROOT.exists() else []:
        if d.name != lab and (d / "state.json").exists():
            other = LabState.load(d.name)
            if other is not None:
                used.add(other.slot)
    in_use = shell.run(["ip", "-o", "-4", "addr", "show"])
    for slot, net in enumerate(mgmt_slots()):
        if slot not in used and str(net.network_address + 1) + "/" not in in_use:
            return slot
    raise LabError(f"all {len(mgmt_slots())} management slots of 203.0.113.0/25 are in use: "
                   "take a lab down first")


def leftovers(names: LabNames) -> bool:
    """Whether a namespace or root link of that lab exists (e.g. after a crash)."""
    return any(ns.startswith(names.netns_prefix) for ns in nodes.netns_list()) or any(
        names.owns_root_link(link) for link in _root_links())


def remove_leftovers(names: LabNames) -> list[str]:
    """Delete every namespace and root link of that lab, found by name; returns what went."""
    removed: list[str] = []
    for ns in nodes.netns_list():
        if ns.startswith(names.netns_prefix):
            nodes.delete_netns(ns)
            removed.append(f"netns {ns}")
    for link in _root_links():
        if names.owns_root_link(link):
            shell.run(["ip", "link", "del", link], check=False)
            removed.append(f"link {link}")
    return removed


def _root_links() -> list[str]:
    out = shell.run(["ip", "-o", "link", "show"])
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
