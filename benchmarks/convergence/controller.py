"""What the controller says through its API, and waiting until it says what we need."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from benchmarks.convergence.base import BenchError
from dove_lab.lab import Lab

Check = Callable[[], str | None]  # None when satisfied, else why not


class Api:
    def __init__(self, lab: Lab) -> None:
        self.base = str(lab.status()["controller"]["api"])

    def get(self, resource: str) -> Any:
        # The lab's management network is local: no proxy, ever.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.base}/v1/{resource}", timeout=5) as resp:
            return json.load(resp)


def wait_until(what: str, timeout: float, check: Check, interval: float = 0.05) -> None:
    """Poll `check` (None when satisfied, else why not) until it is satisfied or time is up."""
    deadline = time.monotonic() + timeout
    why: str | None = "not checked"
    while True:
        try:
            why = check()
        except OSError as exc:
            why = f"API: {exc}"
        if why is None:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}: {why}")
        time.sleep(interval)


def synced_check(api: Api, names: list[str], tunnels: bool = True) -> Check:
    """Every named hypervisor connected and in sync; with `tunnels`, the whole mesh numbered."""
    def check() -> str | None:
        hvs = {h["name"]: h for h in api.get("hypervisors")}
        missing = [n for n in names if n not in hvs]
        if missing:
            return f"controller does not know {missing}"
        bad = [n for n in names if not (hvs[n]["ovsdb"] and hvs[n]["openflow"]
                                        and hvs[n]["in_sync"])]
        if bad:
            return f"not connected and in sync: {bad}"
        if tunnels:
            tun = api.get("tunnels")
            want = len(names) * (len(names) - 1)
            numbered = [t for t in tun if t.get("ofport")]
            if len(tun) != want or len(numbered) != want:
                return f"{len(numbered)}/{want} tunnel ports numbered"
        return None
    return check


def refused_check(api: Api, port: str) -> Check:
    def check() -> str | None:
        refused = {r["port"] for r in api.get("refused")}
        return None if port in refused else f"{port} is not (yet) refused"
    return check


def standby_check(api: Api, port: str, hypervisor: str, standby: bool = True) -> Check:
    """The port is on `hypervisor`, standing by for a migration (or, standby=False, active)."""
    def check() -> str | None:
        found = any(e["port"] == port and e["hypervisor"] == hypervisor
                    and e.get("standby") is standby for e in api.get("endpoints"))
        role = "standing by" if standby else "active"
        return None if found else f"{port} is not (yet) {role} on {hypervisor}"
    return check


def endpoints_check(api: Api, ports: set[str]) -> Check:
    def check() -> str | None:
        bound = {e["port"] for e in api.get("endpoints")}
        missing = ports - bound
        return f"ports not bound: {sorted(missing)[:5]}" if missing else None
    return check
