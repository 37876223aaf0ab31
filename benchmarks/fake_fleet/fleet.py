"""The fleet: every switch, what the phase tracks, and the commands that drive them
(connect, track, wait, report, macs). Connecting retries as OVS does; answers and reports go
out as JSON lines on stdout."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.fake_fleet.switch import SimulatedSwitch
from benchmarks.fake_fleet.tracker import Tracker

CONNECT_TIMEOUT_S, SILENCE_TIMEOUT_S = 10.0, 10.0  # OVS-like reconnects (see _keep_trying)
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 8.0


class Fleet:
    def __init__(self, host: str, port: int, switches: int, dpid_base: int,
                 tls_dir: Path | None = None) -> None:
        self.host, self.port = host, port
        self._tls_dir = tls_dir
        self.switches = [SimulatedSwitch(self, i, dpid_base + i) for i in range(switches)]
        self.tracker = Tracker({})
        self.open_count = 0
        self.uncommitted = switches  # switches that never committed a bundle
        self._waiter: asyncio.Future[bool] | None = None
        self._connecting: list[asyncio.Future[None]] = []
        self._need_all_committed = False

    # called by switches
    def saw(self, sw: SimulatedSwitch, mac: bytes, now: float) -> None:
        i = self.tracker.index.get(mac)
        if i is None:
            return
        if i not in sw.mac_last:
            self.tracker.first_on_a_switch(i)
        sw.mac_last[i] = now
        self.tracker.last_add[i] = now
        sw.bundle_macs.append(i)

    def committed(self, sw: SimulatedSwitch, now: float) -> None:
        if not sw.ever_committed:
            sw.ever_committed = True
            self.uncommitted -= 1
        for i in sw.bundle_macs:
            self.tracker.last_commit[i] = now
        sw.bundle_macs.clear()

    def check_waiter(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._quiet():
            waiter.set_result(True)

    def _quiet(self) -> bool:
        return (self.tracker.remaining <= 0 and self.open_count == 0
                and not (self._need_all_committed and self.uncommitted))

    # commands
    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Start every switch connecting at once; answered at once, they go on connecting."""
        deadline = time.monotonic() + float(cmd.get("within", 600))
        self._connecting = [asyncio.ensure_future(self._keep_trying(sw, deadline))
                            for sw in self.switches]
        return {"op": "connecting", "t0": time.monotonic()}

    async def _keep_trying(self, sw: SimulatedSwitch, deadline: float) -> None:
        """As OVS's rconn does: a connection whose controller says nothing for 10 s is dropped
        (that is what happens when the listen backlog overflows: our side is ESTABLISHED,
        the controller's never was), and a failed one is retried after 1, 2, 4, then 8 s."""
        loop = asyncio.get_running_loop()
        backoff = FIRST_BACKOFF_S
        while time.monotonic() < deadline:
            sw.attempts += 1
            sw.greeted = loop.create_future()
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: sw, self.host, self.port,
                                           ssl=self._tls(sw.index)),
                    timeout=CONNECT_TIMEOUT_S)
                await asyncio.wait_for(sw.greeted, timeout=SILENCE_TIMEOUT_S)
                return
            except (OSError, TimeoutError) as exc:
                sw.last_error = repr(exc) or type(exc).__name__
                sw.abort()
            await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(2 * backoff, MAX_BACKOFF_S)

    def _tls(self, index: int) -> ssl.SSLContext | None:
        """Switch `index`'s client context, with its own certificate (its name is checked)."""
        if self._tls_dir is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(str(self._tls_dir / "controllerca.pem"))
        ctx.load_cert_chain(str(self._tls_dir / f"sw{index}.crt"),
                            str(self._tls_dir / f"sw{index}.key"))
        return ctx

    async def track(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.tracker = Tracker({m: int(n) for m, n in cmd["macs"].items()})
        for sw in self.switches:
            sw.bundle_macs.clear()
            sw.mac_last = {}
        return {"op": "tracking", "macs": len(self.tracker.names),
                "pairs": self.tracker.remaining}

    async def wait(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self._need_all_committed = bool(cmd.get("all_committed"))
        self._waiter = asyncio.get_running_loop().create_future()
        self.check_waiter()
        try:
            await asyncio.wait_for(self._waiter, timeout=float(cmd["timeout"]))
            done = True
        except TimeoutError:
            done = False
        self._waiter = None
        return {"op": "waited", "done": done, "at": time.monotonic(),
                "missing_pairs": max(self.tracker.remaining, 0),
                "open_bundles": self.open_count, "uncommitted": self.uncommitted}

    async def report(self, cmd: dict[str, Any]) -> dict[str, Any]:
        detail = bool(cmd.get("detail"))
        for sw in self.switches:
            emit(sw.report(detail, self.tracker.names))
            sw.reset_phase()
        emit({"op": "macs", "macs": self.tracker.summary()})
        return {"op": "reported", "switches": len(self.switches)}

    async def macs(self, _cmd: dict[str, Any]) -> dict[str, Any]:
        return {"op": "macs", "macs": self.tracker.summary()}

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        for sw in self.switches:
            sw._close()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()
