"""A hostile VM's ARP flood: thousands of requests with random sender addresses, sent from
inside a VM's namespace through a raw socket, for a test to start and always stop."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from dove_lab.state import VmState

_SCRIPT = r"""
import ipaddress, random, socket, struct, sys, time
mac, subnet, count, seconds = bytes.fromhex(sys.argv[1].replace(":", "")), sys.argv[2], \
    int(sys.argv[3]), float(sys.argv[4])
net = ipaddress.ip_network(subnet)
held = [ipaddress.ip_address(a) for a in sys.argv[5].split(",") if a]
spared = {ipaddress.ip_address(a) for a in sys.argv[6].split(",") if a}
pool = [a for a in (net.network_address + i for i in range(2, net.num_addresses - 1))
        if a not in spared]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
gap = seconds / count
for i in range(count):
    spa = random.choice(held or pool)
    frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, spa.packed, b"\x00" * 6,
        (net.network_address + 1).packed)
    s.send(frame)
    time.sleep(gap)
print(count)
"""


@contextlib.contextmanager
def arp_flood(vm: VmState, subnet: str, count: int, seconds: float,
              senders: tuple[str, ...] = (),
              spared: tuple[str, ...] = ()) -> Iterator[subprocess.Popen[str]]:
    """`count` ARP requests from vm's MAC over `seconds`, each from a random sender address
    inside `subnet` but not in `spared` (or one of `senders`)."""
    proc = subprocess.Popen(["ip", "netns", "exec", vm.netns, sys.executable, "-c", _SCRIPT,
                             vm.mac, subnet, str(count), str(seconds), ",".join(senders),
                             ",".join(spared)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
