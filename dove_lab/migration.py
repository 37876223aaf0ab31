"""A live migration, as libvirt and QEMU do one, played with a VM namespace.

1. prepare: the destination port is plugged into the destination's br-int with the VM's MAC
   and iface-id (libvirt plugs it when the migration starts, while the VM still runs at the
   source); in the VM's namespace its far end waits, down, as `mig0`.
2. switch_over: the VM stops at the source and resumes at the destination in one step
   (`ip -batch`: eth0 down and renamed away, mig0 becomes eth0 with the same address and
   default route), then announces itself with a RARP from its MAC, as QEMU does after a
   migration (qemu_announce_self). An Announcer bound to mig0 beforehand sends it at once.
3. finish: the source port is unplugged (libvirt does so when the source domain goes).
docs/migration.md maps each step to a real libvirt migration.
"""

from __future__ import annotations

import subprocess
import sys

from dove_lab import shell
from dove_lab.errors import LabError
from dove_lab.naming import VM_MTU
from dove_lab.state import VmState
from ovsdb_agent import contract
from ovsdb_agent.vswitch import VSwitch

NEW_LINK = "mig0"  # the destination link inside the VM until the switch-over
OLD_LINK = "eth0-src"

# Bound to mig0 before the switch-over (the binding follows the interface through its
# rename); on a line from stdin, RARPs from the VM's MAC as QEMU announces a VM: 5 rounds,
# 50 ms apart and then 100 ms more each time (its announce-* defaults).
ANNOUNCE_GAPS_S = (0.05, 0.15, 0.25, 0.35)
_ANNOUNCER = r"""
import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[2], 0))
print("ready", flush=True)
sys.stdin.readline()
rarp = b"\xff" * 6 + mac + b"\x80\x35" + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3,
                                                     mac, bytes(4), mac, bytes(4))
for gap in [0.0] + [float(g) for g in sys.argv[3:]]:
    time.sleep(gap)
    s.send(rarp + bytes(60 - len(rarp)))
"""


def prepare(vm: VmState, dst_netns: str, vswitch: VSwitch, external_ids: dict[str, str]) -> None:
    """Plug the VM's destination port; the VM keeps running at the source."""
    shell.run(["ip", "-n", dst_netns, "link", "add", vm.port, "type", "veth",
               "peer", "name", NEW_LINK, "netns", vm.netns])
    shell.run(["ip", "-n", dst_netns, "link", "set", vm.port, "mtu", str(VM_MTU), "up"])
    shell.run(["ip", "-n", vm.netns, "link", "set", NEW_LINK, "address", vm.mac,
               "mtu", str(VM_MTU)])
    shell.run(["ethtool", "-K", NEW_LINK, "tx", "off"], netns=vm.netns)  # as eth0 (LAB-NOTES)
    vswitch.plug_vif(contract.INTEGRATION_BRIDGE, vm.port, external_ids)


class Announcer:
    """The VM's announcement, ready to go the moment it resumes (a helper in its namespace,
    bound to the destination link): `with Announcer(vm) as announce: ... announce()`."""

    def __init__(self, vm: VmState) -> None:
        self.vm = vm
        self._proc: subprocess.Popen[str] | None = None
        self._called = False

    def __enter__(self) -> Announcer:
        vm = self.vm
        self._proc = proc = subprocess.Popen(
            ["ip", "netns", "exec", vm.netns, sys.executable, "-c", _ANNOUNCER, vm.mac,
             NEW_LINK, *map(str, ANNOUNCE_GAPS_S)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            self.__exit__()
            why = proc.stderr.read() if proc.stderr else ""
            raise LabError(f"cannot announce {vm.name} from its namespace: {why}")
        return self

    def __call__(self) -> None:
        """The first announcement now; the others follow while the caller goes on."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()
        self._called = True

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        try:
            if self._called:
                self._proc.wait(timeout=sum(ANNOUNCE_GAPS_S) + 5)
        except subprocess.TimeoutExpired:
            pass
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.communicate()


def switch_over(vm: VmState, announce: Announcer) -> None:
    """Stop the VM at the source and resume it at the destination, then announce it."""
    nodad = " nodad" if ":" in vm.ip else ""
    shell.run(["ip", "-n", vm.netns, "-batch", "-"], input="\n".join([
        "link set eth0 down", f"link set eth0 name {OLD_LINK}",
        f"link set {NEW_LINK} name eth0", "link set eth0 up",
        f"addr add {vm.ip}/{vm.prefixlen} dev eth0{nodad}",
        f"route add default via {vm.gateway}"]) + "\n")
    announce()


def finish(vm: VmState, src_netns: str, vswitch: VSwitch | None) -> None:
    """Unplug the source port (its far end in the VM goes with it)."""
    if vswitch is not None:
        vswitch.unplug(vm.port)
    shell.run(["ip", "-n", src_netns, "link", "del", vm.port], check=False)
