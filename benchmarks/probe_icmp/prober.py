"""The prober: one background thread sends every active pair's echo each interval, reads
every VM's frames (epoll) and classifies each reply: the pair's first reply, another VM of
the sender's own network, an older incarnation, or a leak."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.probe_icmp.base import INTERVAL_S, Leak, ProbeError, ProbeVm
from benchmarks.probe_icmp.netns import PACKET_OUTGOING, SO_TIMESTAMPNS, open_in_netns
from benchmarks.probe_icmp.packets import ICMP_ECHO_REPLY, EchoTemplate, mac_text
from benchmarks.probe_icmp.session import Pair, Session


@dataclass
class _VmSockets:
    vm: ProbeVm
    tx: socket.socket
    rx: socket.socket


class IcmpProber:
    """Echo requests from VM namespaces every `interval`; one background thread does it all."""

    def __init__(self, interval: float = INTERVAL_S, check_mac: bool = True) -> None:
        self.interval = interval
        self.check_mac = check_mac  # False: any Ethernet source (no leak classification)
        self.nonce = os.urandom(4)
        self._socks: dict[str, _VmSockets] = {}  # VM name -> sockets
        self._by_rx: dict[int, _VmSockets] = {}
        self._vm_by_mac: dict[str, ProbeVm] = {}
        self._pairs: dict[int, Pair] = {}  # ICMP identifier -> pair (latest holder)
        self._sessions: list[Session] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stop = threading.Event()
        self._clock_offset = time.time() - time.monotonic()
        self.leaks: list[Leak] = []
        self.stats = {"sent": 0, "send_errors": 0, "frames": 0, "replies": 0}
        self._thread = threading.Thread(target=self._run, name="icmp-prober", daemon=True)
        self._thread.start()

    # --- set-up ---------------------------------------------------------------------------

    def add_vm(self, vm: ProbeVm, *, sockets: bool = True) -> None:
        """Know a VM (its MAC identifies replies); with sockets=True it can also send."""
        with self._lock:
            self._vm_by_mac[vm.mac.lower()] = vm
        if not sockets or vm.name in self._socks:
            return
        tx, rx = open_in_netns(vm.netns)
        vs = _VmSockets(vm, tx, rx)
        with self._lock:
            self._socks[vm.name] = vs
            self._by_rx[rx.fileno()] = vs
        self._epoll.register(rx.fileno(), select.EPOLLIN)

    def close(self) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5)
        for vs in self._socks.values():
            with contextlib.suppress(OSError):
                self._epoll.unregister(vs.rx.fileno())
            vs.tx.close()
            vs.rx.close()
        self._socks.clear()
        self._by_rx.clear()
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> IcmpProber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sessions -------------------------------------------------------------------------

    def until_answered(self, pairs: Iterable[tuple[ProbeVm, ProbeVm]]) -> Session:
        """Probe each pair every interval until its first reply; starts sending at once."""
        return self._start(pairs, budget=None, linger=0.0)

    def window(self, pairs: Iterable[tuple[ProbeVm, ProbeVm]], count: int = 5,
               linger: float = 0.2) -> Session:
        """Send exactly `count` echoes per pair; done `linger` s after the last one."""
        return self._start(pairs, budget=count, linger=linger)

    def _start(self, pairs: Iterable[tuple[ProbeVm, ProbeVm]], budget: int | None,
               linger: float) -> Session:
        session = Session(linger=linger)
        with self._lock:
            for src, dst in pairs:
                if src.name not in self._socks:
                    raise ProbeError(f"no sockets for VM {src.name}: add_vm it first")
                ident = self._next_ident()
                pair = Pair(ident, src, dst, budget, session,
                             template=EchoTemplate(ident, self.nonce))
                self._pairs[ident] = pair
                session.pairs.append(pair)
            if not session.pairs:
                session.done.set()
            else:
                self._sessions.append(session)
        self._wake()
        return session

    def _next_ident(self) -> int:
        while True:
            ident = next(self._ids) & 0xFFFF
            old = self._pairs.get(ident)
            if ident and (old is None or not old.active):
                return ident

    # --- the loop -------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self._send_round(now)
                next_tick = max(next_tick + self.interval, now + self.interval / 2)
            self._finish_sessions(time.monotonic())
            busy = any(not s.done.is_set() for s in self._sessions)
            timeout = max(0.0, next_tick - time.monotonic()) if busy else 0.5
            for fd, _events in self._epoll.poll(timeout):
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    next_tick = min(next_tick, time.monotonic())  # a new session: send now
                else:
                    self._drain(fd)

    def _send_round(self, now: float) -> None:
        with self._lock:
            pairs = [p for s in self._sessions if not s.done.is_set() for p in s.pairs
                     if p.active]
        for p in pairs:
            vs = self._socks.get(p.src.name)
            if vs is None:
                continue
            p.seq = (p.seq + 1) & 0xFFFF
            try:
                assert p.template is not None
                vs.tx.sendto(p.template.packet(p.seq), (p.dst.ip, 0))
            except OSError as exc:
                # EHOSTUNREACH etc. while ARP fails or the link is down: try next tick.
                if exc.errno not in (errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                     errno.ENOBUFS, errno.EINVAL, errno.ENETDOWN):
                    raise
                self.stats["send_errors"] += 1
            p.sent += 1
            p.session.last_send = now
            if p.first_sent is None:
                p.first_sent = now
            self.stats["sent"] += 1

    def _finish_sessions(self, now: float) -> None:
        with self._lock:
            for s in self._sessions:
                if s.done.is_set():
                    continue
                if all(not p.active for p in s.pairs) and now >= s.last_send + s.linger:
                    s.done.set()
            self._sessions = [s for s in self._sessions if not s.done.is_set()]

    def _drain(self, fd: int) -> None:
        vs = self._by_rx.get(fd)
        if vs is None:
            return
        while True:
            try:
                data, anc, _flags, addr = vs.rx.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.stats["frames"] += 1
            if addr[2] == PACKET_OUTGOING:
                continue
            at = time.monotonic()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    at = sec + nsec / 1e9 - self._clock_offset
            self._on_frame(vs.vm, data, at)

    def _on_frame(self, receiver: ProbeVm, frame: bytes, at: float) -> None:
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 1:
            return
        ihl = (frame[14] & 0x0F) * 4
        icmp = 14 + ihl
        if len(frame) < icmp + 8 + 4 or frame[icmp] != ICMP_ECHO_REPLY:
            return
        ident, seq = struct.unpack("!HH", frame[icmp + 4:icmp + 8])
        if frame[icmp + 8:icmp + 12] != self.nonce:
            return
        pair = self._pairs.get(ident)
        if pair is None or pair.src.name != receiver.name:
            return
        if seq == 0 or (pair.seq - seq) & 0xFFFF > 0x7FFF:
            return  # not a sequence number we sent
        self.stats["replies"] += 1
        src_ip = socket.inet_ntoa(frame[26:30])
        mac = mac_text(frame[6:12])
        ttl = frame[22]
        if not self.check_mac:
            mac = pair.dst.mac.lower()
        if pair.dst.routed:  # through the gateway: by address (the MAC is the gateway's)
            self._count(pair, at, ttl, own=mac != pair.dst.mac.lower() or src_ip != pair.dst.ip)
            return
        responder = self._vm_by_mac.get(mac) if self.check_mac else pair.src
        if responder is None or responder.network != pair.src.network:
            self.leaks.append(Leak(pair.src.name, pair.dst.name, mac,
                                   responder.name if responder else None, at))
            return
        self._count(pair, at, ttl, own=mac != pair.dst.mac.lower() or src_ip != pair.dst.ip)

    @staticmethod
    def _count(pair: Pair, at: float, ttl: int, own: bool) -> None:
        if own:
            pair.own_network_replies += 1
            return
        if pair.dst.ttl is not None and ttl != pair.dst.ttl:
            pair.stale_replies += 1
            return
        pair.replies += 1
        if pair.first_reply is None:
            pair.first_reply = at
