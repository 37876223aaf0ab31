"""Capture what crosses a lab's underlay and look inside the VXLAN packets."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from os_ken.lib import pcaplib
from os_ken.lib.packet import ethernet, packet, vxlan

from dove_lab.lab import Lab
from dove_lab.nodes import UNDERLAY_BRIDGE


@dataclass(frozen=True)
class Tunnelled:
    vni: int
    inner_ethertype: int


@contextmanager
def capture_underlay(lab: Lab) -> Iterator[Callable[[], list[Tunnelled]]]:
    """Run tcpdump on the underlay bridge for the block; yields a reader of what it saw."""
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "underlay.pcap"
        # --immediate-mode: without it packets wait in the kernel's buffer and miss the file
        proc = subprocess.Popen(["ip", "netns", "exec", lab.names.underlay_netns, "tcpdump",
                                 "-i", UNDERLAY_BRIDGE, "-U", "--immediate-mode", "-n",
                                 "-w", str(pcap), "udp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(proc)
            seen: list[Tunnelled] = []
            yield lambda: seen
        finally:
            time.sleep(0.2)  # let the last packets of the block reach the file
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        seen.extend(_read(pcap))


def _wait_listening(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # "listening on ul0, ..." once capturing
    if "listening" not in line:
        raise RuntimeError(f"tcpdump did not start: {line}")


def _read(pcap: Path) -> list[Tunnelled]:
    out = []
    with open(pcap, "rb") as f:
        for _ts, buf in pcaplib.Reader(f):
            pkt = packet.Packet(buf)
            vx = pkt.get_protocol(vxlan.vxlan)
            if vx is None:
                continue
            inner = [p for p in pkt.protocols if isinstance(p, ethernet.ethernet)]
            if len(inner) >= 2:
                out.append(Tunnelled(vx.vni, inner[1].ethertype))
    return out
