"""Who reaches whom: pings from inside VM namespaces, checked for the right responder."""

from __future__ import annotations

import ipaddress
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from dove_lab.state import LabState, VmState


class Fate(StrEnum):
    REACHES = "reaches"
    NO_REPLY = "no reply"
    OTHER_VM = "other vm"  # dst's address answered, but from a VM of src's own network
    LEAK = "leak"  # a VM of another tenant answered: isolation is broken
    SAME_ADDRESS = "same address"  # dst has src's own address: src cannot address it at all


@dataclass(frozen=True)
class Probe:
    src: str
    dst: str
    fate: Fate


def ping(src: VmState, dst_ip: str, count: int = 1, timeout: float = 3.0,
         interval: float = 0.2) -> bool:
    """True when src gets `count` echo replies from dst_ip before the deadline.

    `ping -w` keeps sending every interval until enough replies came or the deadline passed,
    so a first packet lost while OVS resolves the underlay does not fail the probe.
    """
    argv = ["ip", "netns", "exec", src.netns, "ping", "-n", "-q", "-c", str(count),
            "-i", str(interval), "-w", str(max(1, round(timeout))), dst_ip]
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=timeout + 5).returncode == 0


def neighbour_mac(vm: VmState, ip: str) -> str | None:
    out = subprocess.run(["ip", "-n", vm.netns, "neigh", "show", ip], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL).stdout.split()
    return out[out.index("lladdr") + 1].lower() if "lladdr" in out else None


def on_link(src: VmState, dst: VmState) -> bool:
    net = ipaddress.ip_interface(f"{src.ip}/{src.prefixlen}").network
    return ipaddress.ip_address(dst.ip) in net


def probe(src: VmState, dst: VmState, vms: dict[str, VmState] | None = None,
          timeout: float = 3.0) -> Probe:
    """Does src reach dst? For on-link peers the answering MAC tells who really answered."""
    if ipaddress.ip_address(src.ip) == ipaddress.ip_address(dst.ip):
        return Probe(src.name, dst.name, Fate.SAME_ADDRESS)
    if not ping(src, dst.ip, timeout=timeout):
        return Probe(src.name, dst.name, Fate.NO_REPLY)
    mac = neighbour_mac(src, dst.ip) if on_link(src, dst) else None
    if mac is None or mac == dst.mac:
        return Probe(src.name, dst.name, Fate.REACHES)
    responder = next((v for v in (vms or {}).values() if v.mac == mac), None)
    if responder is not None and responder.network == src.network:
        return Probe(src.name, dst.name, Fate.OTHER_VM)
    return Probe(src.name, dst.name, Fate.LEAK)


def matrix(state: LabState, timeout: float = 3.0) -> list[Probe]:
    """Probe every ordered pair of VMs, in parallel; results in (src, dst) order."""
    vms = sorted(state.vms.values(), key=lambda v: v.name)
    pairs = [(s, d) for s in vms for d in vms if s is not d]
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(pairs)))) as pool:
        return list(pool.map(lambda p: probe(p[0], p[1], state.vms, timeout), pairs))


def render_matrix(state: LabState, probes: list[Probe]) -> str:
    """A VM-by-VM table: rows send, columns answer."""
    names = sorted(state.vms)
    fate = {(p.src, p.dst): p.fate for p in probes}
    mark = {Fate.REACHES: "ok", Fate.NO_REPLY: "-", Fate.OTHER_VM: "~", Fate.LEAK: "X",
            Fate.SAME_ADDRESS: "="}
    width = max(len(n) for n in names) if names else 4
    label = {n: f"{n} ({state.vms[n].network} {state.vms[n].ip})" for n in names}
    lw = max(len(v) for v in label.values()) if names else 4
    lines = [" " * lw + "  " + " ".join(n.rjust(width) for n in names)]
    for src in names:
        cells = [("." if src == dst else mark[fate[(src, dst)]]).rjust(width) for dst in names]
        lines.append(label[src].ljust(lw) + "  " + " ".join(cells))
    lines.append("rows ping columns: ok = reaches, - = no reply, ~ = its address answered from "
                 "the sender's own network, = = the sender's own address, X = another tenant "
                 "answered (isolation broken)")
    return "\n".join(lines)
