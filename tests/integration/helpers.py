"""What integration tests look at: leftovers of a lab, and reachability with deadlines."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ryu_dove.lab.lab import Lab
from ryu_dove.lab.naming import LabNames
from ryu_dove.lab.probe import Fate, probe


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
    return probe(state.vms[src], state.vms[dst], timeout=timeout).fate
