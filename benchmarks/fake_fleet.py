"""A fleet of fake OpenFlow 1.3 switches in one asyncio process, for benchmarks/scale.py.

Why it exists: a thousand ovs-vswitchd do not fit on one machine, and os-ken's own message
classes cost tens of microseconds a message, too slow to stand in for thousands of switches.
So each fake switch speaks only what the controller's handshake and reconciler need, with
`struct` on raw headers: HELLO, FEATURES_REPLY (a distinct datapath id per switch), empty
PORT_DESC and FLOW multipart replies (a cold start: nothing installed), ECHO and BARRIER
replies, and ONF bundle control replies (OPEN/COMMIT/... with the request's bundle id and
xid). Flow-mods, inside BUNDLE_ADD or plain, are counted, never applied; a barrier after
plain flow-mods counts as that update's commit. No packets are processed.

What it measures, with time.monotonic() (CLOCK_MONOTONIC is system-wide, so the times
compare with the benchmark process's): per switch its connect, handshake and commit times
and its flow-mods; per tracked MAC, when a flow-mod matching eth_dst=MAC reached each switch
and when the bundle (or barrier) that completed it was answered.

Driven by JSON lines on stdin, answered by JSON lines on stdout (nothing else is printed
there). Commands, each answered once:
    {"op": "connect", "within": S}             -> {"op": "connecting", "t0"}; every switch
                                      connects at once, retrying as OVS does for S seconds
    {"op": "track", "macs": {MAC: switches}}   -> {"op": "tracking", "macs", "pairs"}
    {"op": "wait", "timeout": S, "all_committed": B} -> {"op": "waited", "done", ...}
    {"op": "report", "detail": B}  -> {"op": "switch", ...} per switch, {"op": "macs", ...},
                                      {"op": "reported"}; per-phase counters restart
    {"op": "macs"}                 -> {"op": "macs", "macs": {MAC: [last add, last commit, n]}}
    {"op": "quit"}                             -> (exits; so does end of input)
`wait` ends when every tracked MAC reached as many switches as asked, no bundle is open and
(with all_committed) every switch committed at least once, or when the timeout passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

OFP_VERSION = 0x04
OFPT_HELLO, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_EXPERIMENTER = 0, 2, 3, 4
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_FLOW_MOD = 5, 6, 14
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 3, 4
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL, ONF_ET_BUNDLE_ADD_MESSAGE = 2300, 2301
ONF_BCT_OPEN_REQUEST, ONF_BCT_COMMIT_REQUEST, ONF_BCT_DISCARD_REQUEST = 0, 4, 6
OXM_ETH_DST = (0x8000 << 16) | (3 << 9) | 6  # OpenFlow basic class, field 3, no mask, 6 bytes
CONNECT_TIMEOUT_S, SILENCE_TIMEOUT_S = 10.0, 10.0  # OVS-like reconnects (see _keep_trying)
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 8.0
CAPABILITIES = 0x4F  # flow, table, port, group stats; IP reassembly off; queue stats

HEADER = struct.Struct("!BBHI")  # version, type, length, xid
FEATURES_REPLY = struct.Struct("!BBHIQIBB2xII")  # + datapath_id n_buffers n_tables aux caps rsv
MULTIPART_HEAD = struct.Struct("!BBHIHH4x")  # + type, flags
EXPERIMENTER_HEAD = struct.Struct("!II")  # experimenter, exp_type (after the header)
BUNDLE_CTRL = struct.Struct("!IHH")  # bundle_id, type, flags (after the experimenter head)
BUNDLE_CTRL_MSG = struct.Struct("!BBHIIIIHH")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")

BUNDLE_ADD_INNER = 24  # header 8 + experimenter 8 + bundle_id 4 + pad 2 + flags 2
FLOW_MOD_COMMAND = 25  # offsets inside a flow-mod: command byte, match length, first OXM
FLOW_MOD_MATCH = 48


# --- wire helpers (pure) --------------------------------------------------------------------

def hello(xid: int = 0) -> bytes:
    return HEADER.pack(OFP_VERSION, OFPT_HELLO, HEADER.size, xid)


def features_reply(xid: int, dpid: int) -> bytes:
    return FEATURES_REPLY.pack(OFP_VERSION, OFPT_FEATURES_REPLY, FEATURES_REPLY.size, xid,
                               dpid, 0, 254, 0, CAPABILITIES, 0)


def empty_multipart_reply(xid: int, mp_type: int) -> bytes:
    return MULTIPART_HEAD.pack(OFP_VERSION, OFPT_MULTIPART_REPLY, MULTIPART_HEAD.size, xid,
                               mp_type, 0)


def bundle_ctrl_reply(xid: int, bundle_id: int, request_type: int, flags: int) -> bytes:
    """The reply to a bundle control request: same xid and bundle id, type + 1 (…_REPLY)."""
    return BUNDLE_CTRL_MSG.pack(OFP_VERSION, OFPT_EXPERIMENTER, BUNDLE_CTRL_MSG.size, xid,
                                ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL, bundle_id,
                                request_type + 1, flags)


def reply_header(buf: bytes | bytearray, off: int, length: int, new_type: int) -> bytes:
    """Echo or barrier reply: the request with its type changed (body kept)."""
    out = bytearray(buf[off:off + length])
    out[1] = new_type
    return bytes(out)


def eth_dst(buf: bytes | bytearray, fm: int) -> bytes | None:
    """The exact eth_dst of the flow-mod starting at `fm`, if its match has one."""
    mlen = U16.unpack_from(buf, fm + FLOW_MOD_MATCH + 2)[0]
    p, end = fm + FLOW_MOD_MATCH + 4, fm + FLOW_MOD_MATCH + mlen
    while p + 4 <= end:
        head = U32.unpack_from(buf, p)[0]
        if head == OXM_ETH_DST:
            return bytes(buf[p + 4:p + 10])
        p += 4 + (head & 0xFF)
    return None


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


# --- what is tracked ------------------------------------------------------------------------

class Tracker:
    """Tracked MACs: on how many switches each must arrive, and when it last did."""

    def __init__(self, macs: dict[str, int]) -> None:
        self.names = list(macs)
        self.index = {mac_bytes(m): i for i, m in enumerate(self.names)}
        self.expected = list(macs.values())
        self.seen = [0] * len(self.names)  # distinct switches that got it
        self.last_add = [0.0] * len(self.names)
        self.last_commit = [0.0] * len(self.names)
        self.remaining = sum(self.expected)  # (MAC, switch) pairs still to arrive

    def first_on_a_switch(self, i: int) -> None:
        self.seen[i] += 1
        if self.seen[i] <= self.expected[i]:
            self.remaining -= 1

    def summary(self) -> dict[str, list[float]]:
        return {m: [self.last_add[i], self.last_commit[i], self.seen[i]]
                for i, m in enumerate(self.names)}


# --- one switch -------------------------------------------------------------------------------

class SimulatedSwitch(asyncio.Protocol):
    """One OpenFlow connection; replies are written as soon as a request is parsed."""

    def __init__(self, fleet: Fleet, index: int, dpid: int) -> None:
        self.fleet = fleet
        self.index = index
        self.dpid = dpid
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.times: dict[str, float] = {}  # connected, hello, features, dumped, lost
        self.open_bundles: set[int] = set()
        self.bundle_macs: list[int] = []  # tracked MACs in the open bundle or update
        self.unbarriered = False  # plain flow-mods since the last barrier
        self.installed = 0  # adds - deletes since connect (the table starts empty)
        self.ever_committed = False
        self.attempts = 0  # connect attempts
        self.last_error = ""
        self.greeted: asyncio.Future[bool] | None = None  # done when the controller's HELLO came
        self.reset_phase()

    def reset_phase(self) -> None:
        self.commits: list[float] = []
        self.adds = 0
        self.deletes = 0
        self.others = 0
        self.first_flow_mod = 0.0
        self.mac_last: dict[int, float] = {}

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = bytearray()
        self.times.pop("lost", None)
        self.times["connected"] = time.monotonic()
        transport.write(hello())

    def connection_lost(self, exc: Exception | None) -> None:
        self.times["lost"] = time.monotonic()
        self.fleet.open_count -= len(self.open_bundles)
        self.open_bundles.clear()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf
        buf += data
        off, end = 0, len(buf)
        while end - off >= HEADER.size:
            _version, mtype, length, xid = HEADER.unpack_from(buf, off)
            if length < HEADER.size:  # not OpenFlow: give up on this connection
                self._close()
                return
            if end - off < length:
                break
            self._message(mtype, xid, buf, off, length, now)
            off += length
        if off:
            del buf[:off]
        self.fleet.check_waiter()

    # messages
    def _message(self, mtype: int, xid: int, buf: bytearray, off: int, length: int,
                 now: float) -> None:
        if mtype == OFPT_EXPERIMENTER:
            self._experimenter(xid, buf, off, now)
        elif mtype == OFPT_ECHO_REQUEST:
            self._send(reply_header(buf, off, length, OFPT_ECHO_REPLY))
        elif mtype == OFPT_BARRIER_REQUEST:
            self._send(reply_header(buf, off, length, OFPT_BARRIER_REPLY))
            if self.unbarriered:  # plain flow-mods, then this barrier: that update's commit
                self.unbarriered = False
                self.commits.append(now)
                self.fleet.committed(self, now)
        elif mtype == OFPT_FEATURES_REQUEST:
            self.times["features"] = now
            self._send(features_reply(xid, self.dpid))
        elif mtype == OFPT_MULTIPART_REQUEST:
            mp_type = U16.unpack_from(buf, off + HEADER.size)[0]
            self.times["dumped" if mp_type == 1 else "port_desc"] = now
            self._send(empty_multipart_reply(xid, mp_type))
        elif mtype == OFPT_FLOW_MOD:
            self.unbarriered = True
            self._flow_mod(buf, off, now)
        elif mtype == OFPT_HELLO:
            self.times["hello"] = now
            if self.greeted is not None and not self.greeted.done():
                self.greeted.set_result(True)
        else:
            self.others += 1

    def _experimenter(self, xid: int, buf: bytearray, off: int, now: float) -> None:
        experimenter, exp_type = EXPERIMENTER_HEAD.unpack_from(buf, off + HEADER.size)
        if experimenter != ONF_EXPERIMENTER_ID:
            self.others += 1
        elif exp_type == ONF_ET_BUNDLE_ADD_MESSAGE:
            inner = off + BUNDLE_ADD_INNER
            if buf[inner + 1] == OFPT_FLOW_MOD:
                self._flow_mod(buf, inner, now)
            else:
                self.others += 1
        elif exp_type == ONF_ET_BUNDLE_CONTROL:
            bundle_id, ctype, flags = BUNDLE_CTRL.unpack_from(buf, off + 16)
            self._send(bundle_ctrl_reply(xid, bundle_id, ctype, flags))
            self._bundle_ctrl(bundle_id, ctype, now)
        else:
            self.others += 1

    def _bundle_ctrl(self, bundle_id: int, ctype: int, now: float) -> None:
        if ctype == ONF_BCT_OPEN_REQUEST:
            if bundle_id not in self.open_bundles:
                self.open_bundles.add(bundle_id)
                self.fleet.open_count += 1
            return
        if ctype not in (ONF_BCT_COMMIT_REQUEST, ONF_BCT_DISCARD_REQUEST):
            return
        if bundle_id in self.open_bundles:
            self.open_bundles.discard(bundle_id)
            self.fleet.open_count -= 1
        if ctype == ONF_BCT_COMMIT_REQUEST:
            self.commits.append(now)
            self.fleet.committed(self, now)

    def _flow_mod(self, buf: bytearray, fm: int, now: float) -> None:
        if not self.first_flow_mod:
            self.first_flow_mod = now
        command = buf[fm + FLOW_MOD_COMMAND]
        if command in (OFPFC_DELETE, OFPFC_DELETE_STRICT):
            self.deletes += 1
            self.installed -= 1
            return
        self.adds += 1
        self.installed += 1
        mac = eth_dst(buf, fm)
        if mac is not None:
            self.fleet.saw(self, mac, now)

    def _send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def report(self, detail: bool, names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "op": "switch", "i": self.index, "dpid": self.dpid, **self.times,
            "commits": self.commits, "adds": self.adds, "deletes": self.deletes,
            "installed": self.installed, "others": self.others,
            "first_flow_mod": self.first_flow_mod, "open_bundles": len(self.open_bundles),
            "tracked_macs": len(self.mac_last), "attempts": self.attempts,
        }
        if self.transport is None and self.last_error:
            out["error"] = self.last_error
        if detail:
            out["macs"] = {names[i]: t for i, t in self.mac_last.items()}
        return out


# --- the fleet --------------------------------------------------------------------------------

class Fleet:
    def __init__(self, host: str, port: int, switches: int, dpid_base: int) -> None:
        self.host, self.port = host, port
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
                    loop.create_connection(lambda: sw, self.host, self.port),
                    timeout=CONNECT_TIMEOUT_S)
                await asyncio.wait_for(sw.greeted, timeout=SILENCE_TIMEOUT_S)
                return
            except (OSError, TimeoutError) as exc:
                sw.last_error = repr(exc) or type(exc).__name__
                sw.abort()
            await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(2 * backoff, MAX_BACKOFF_S)

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


async def serve(fleet: Fleet) -> None:
    """Run commands one at a time; end of input (the benchmark is gone) ends even a `wait`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
        "connect": fleet.connect, "track": fleet.track, "wait": fleet.wait,
        "report": fleet.report, "macs": fleet.macs}
    try:
        line = await reader.readline()
        while line and (cmd := json.loads(line))["op"] != "quit":
            task = asyncio.ensure_future(commands[cmd["op"]](cmd))
            next_line = asyncio.ensure_future(reader.readline())
            await asyncio.wait({task, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if next_line.done() and not next_line.result():
                task.cancel()
                break
            emit(await task)
            line = await next_line
    finally:
        fleet.close()


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the controller's OpenFlow port")
    p.add_argument("--switches", type=int, required=True)
    p.add_argument("--dpid-base", type=int, default=1, help="datapath id of switch 0")
    args = p.parse_args(argv)
    raise_fd_limit(args.switches + 256)
    asyncio.run(serve(Fleet(args.host, args.port, args.switches, args.dpid_base)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
