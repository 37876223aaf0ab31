"""What integration tests look at: leftovers of a lab, and reachability with deadlines."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dove_lab.lab import Lab
from dove_lab.naming import LabNames
from dove_lab.probe import Fate, probe
from ovsdb_agent import contract

# Two hypervisors, a VM of acme/web on each.
PAIR = """
hypervisors: [hv1, hv2]
vms:
  - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
"""


def leftovers(lab_name: str) -> list[str]:
    """Everything of a lab that still exists: namespaces, root links, processes, files."""
    names = LabNames(lab_name)
    found = [f"netns {n}" for n in _lines(["ip", "netns", "list"])
             if n.split()[0].startswith(names.netns_prefix)]
    found += [f"link {link}" for link in _root_links() if names.owns_root_link(link)]
    lab_dir = Path("/run/dove-lab") / lab_name
    found += [f"process {pid}" for pid in _pids_mentioning(str(lab_dir))]
    if lab_dir.exists():
        found.append(f"dir {lab_dir}")
    return found


def _lines(argv: list[str]) -> list[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def _root_links() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0]
            for line in _lines(["ip", "-o", "link", "show"])]


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def fate(lab: Lab, src: str, dst: str, timeout: float = 3.0) -> Fate:
    state = lab.state()
    return probe(state.vms[src], state.vms[dst], state.vms, timeout=timeout).fate


def api_get(lab: Lab, resource: str) -> list[dict[str, object]]:
    import json
    import urllib.request

    url = f"{lab.status()['controller']['api']}/v1/{resource}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: list[dict[str, object]] = json.load(resp)
    return data


def wait_in_sync(lab: Lab, timeout: float = 20.0) -> None:
    """Wait until the tunnel mesh is complete and every hypervisor has exactly its flows.

    In sync alone is not enough: a switch can be in sync with a desired state that still
    lacks the tunnels whose ports OVS has not numbered yet.
    """
    names = set(lab.state().hypervisors)
    mesh = {(a, b) for a in names for b in names if a != b}

    def synced() -> bool:
        try:
            hvs = {h["name"]: h for h in api_get(lab, "hypervisors")}
            tunnels = {(t["hypervisor"], t["remote"]) for t in api_get(lab, "tunnels")
                       if isinstance(t["ofport"], int) and t["ofport"] > 0}
        except OSError:
            return False
        return (names <= hvs.keys() and all(hvs[n]["in_sync"] for n in names)
                and mesh <= tunnels)

    wait_for(synced, timeout, f"every hypervisor of {lab.name} in sync")


def installed(lab: Lab, hv: str) -> dict[int, tuple[float, str]]:
    """cookie -> (seconds the flow has been installed, the flow), as OVS reports it."""
    ovs = lab.ovs(lab.state().hypervisors[hv])
    out = ovs.ofctl("dump-flows", ovs.bridge_mgmt(contract.INTEGRATION_BRIDGE))
    flows = {}
    for line in out.splitlines():
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", line)
        duration = re.search(r"duration=([0-9.]+)s", line)
        if cookie and duration:
            flows[int(cookie.group(1), 16)] = (float(duration.group(1)), line.strip())
    return flows


def changed(before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]]) -> str:
    gone = [before[c][1] for c in before.keys() - after.keys()]
    new = [after[c][1] for c in after.keys() - before.keys()]
    return "\n".join(["gone:", *gone, "new:", *new])


TCP_PORT = 7000
_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""
_CLIENT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as c:
            print(c.recv(100).decode().strip()); break
    except OSError:
        time.sleep(0.1)
"""


def tcp_name_server(netns: str, name: str, port: int = TCP_PORT, host: str = "0.0.0.0",
                    ) -> subprocess.Popen[bytes]:
    """A TCP server in a VM that answers every connection with the VM's name (on IPv6
    with host="::")."""
    import sys

    return subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", _SERVER, name,
                             host, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tcp_read(netns: str, ip: str, port: int = TCP_PORT, timeout: float = 5.0) -> str:
    """Connect from a VM (retrying until the deadline) and return what the server says."""
    import sys

    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _CLIENT, ip,
                          str(port), str(timeout)],
                         capture_output=True, text=True, timeout=timeout + 5)
    return out.stdout.strip()
