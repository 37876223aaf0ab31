"""One fake switch: an asyncio protocol that answers the handshake, echoes, barriers and
bundle control at once, and counts flow-mods (in bundles or plain) without applying them."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from benchmarks.fake_fleet.wire import (
    BUNDLE_ADD_INNER,
    BUNDLE_CTRL,
    EXPERIMENTER_HEAD,
    FLOW_MOD_COMMAND,
    HEADER,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPT_BARRIER_REPLY,
    OFPT_BARRIER_REQUEST,
    OFPT_ECHO_REPLY,
    OFPT_ECHO_REQUEST,
    OFPT_EXPERIMENTER,
    OFPT_FEATURES_REQUEST,
    OFPT_FLOW_MOD,
    OFPT_HELLO,
    OFPT_MULTIPART_REQUEST,
    ONF_BCT_COMMIT_REQUEST,
    ONF_BCT_DISCARD_REQUEST,
    ONF_BCT_OPEN_REQUEST,
    ONF_ET_BUNDLE_ADD_MESSAGE,
    ONF_ET_BUNDLE_CONTROL,
    ONF_EXPERIMENTER_ID,
    U16,
    bundle_ctrl_reply,
    empty_multipart_reply,
    eth_dst,
    features_reply,
    hello,
    reply_header,
)

if TYPE_CHECKING:
    from benchmarks.fake_fleet.fleet import Fleet


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
            # A flow dump asks for every table; the rule counters' read for one (not a dump).
            one_table = mp_type == 1 and buf[off + HEADER.size + 8] != 0xFF
            self.times["counters" if one_table else "dumped" if mp_type == 1
                       else "port_desc"] = now
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
