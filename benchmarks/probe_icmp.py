"""Raw-ICMP reachability prober for lab VMs: first-reply times, with the responder checked.

One process probes every VM namespace of a lab: for each VM it opens two sockets *inside the
VM's network namespace* (on a short-lived thread that `setns`-es into it; a socket stays in
the namespace it was created in, whatever thread uses it later):

- an `AF_INET`/`SOCK_RAW`/`IPPROTO_ICMP` socket to send echo requests. The VM's own kernel
  routes them and resolves the destination with ARP, so the VM's ARP timers are part of what
  is measured; an `ICMP_FILTER` makes this socket receive nothing;
- an `AF_PACKET` socket bound to the VM's `eth0` that receives every IPv4 frame with the
  kernel's receive timestamp (`SO_TIMESTAMPNS`), so a reply is seen with its Ethernet source.

A reply counts for the pair (src VM, dst VM) only if it arrives on src's `eth0`, is an ICMP
echo reply with the identifier and a sequence number this prober sent for that pair (and the
run's nonce in the payload), comes from dst's IP address *and* dst's MAC address and, when
dst names one, carries dst's IP TTL (used to tell a migrated VM's new incarnation from the
old one: same MAC, same IP, different `net.ipv4.ip_default_ttl`). A reply to one of our
echoes whose Ethernet source is a VM of another network than the sender's (or no known VM)
is recorded as a leak: isolation is broken. A reply from another VM of the sender's own
network (overlapping addresses: the address exists in both tenants) is counted as neither.

Sessions: `until_answered(pairs)` sends one echo per still-unanswered pair every `interval`
(20 ms) and is done when every pair has had its first reply; `window(pairs, count)` sends
`count` echoes per pair and is done `linger` seconds after the last one (to prove silence).
All times are `time.monotonic()` seconds (kernel timestamps are mapped onto that clock).

As a tool: `python -m benchmarks.probe_icmp --netns NS [--mac MAC] DST_IP...` prints the
first-reply time of each destination as JSON (run as root).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import itertools
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

INTERVAL_S = 0.02
CLONE_NEWNET = 0x40000000
SOL_RAW = 255
ICMP_FILTER = 1
SOL_PACKET = 263
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD on x86-64 and arm64: struct timespec of two longs
PACKET_OUTGOING = 4
ETH_P_IP = 0x0800
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
NETNS_DIR = "/run/netns"


class ProbeError(RuntimeError):
    """The prober could not be set up (namespace, sockets) or was used wrongly."""


@dataclass(frozen=True)
class ProbeVm:
    """A VM as the prober sees it. `network` is "tenant/net"; `ttl` marks an incarnation."""

    name: str
    netns: str
    ip: str
    mac: str
    network: str
    ttl: int | None = None


@dataclass(frozen=True)
class Leak:
    src: str
    dst: str
    responder_mac: str
    responder: str | None  # the VM owning that MAC, if any
    at: float


@dataclass
class _Pair:
    ident: int
    src: ProbeVm
    dst: ProbeVm
    budget: int | None  # None: until the first reply; n: exactly n echoes
    session: Session
    seq: int = 0
    sent: int = 0
    replies: int = 0
    first_sent: float | None = None
    first_reply: float | None = None
    template: _EchoTemplate | None = None
    own_network_replies: int = 0  # answered by another VM of src's network (same address)
    stale_replies: int = 0  # dst's MAC and IP but not its TTL (an older incarnation)

    @property
    def active(self) -> bool:
        if self.budget is None:
            return self.first_reply is None
        return self.sent < self.budget


@dataclass
class Session:
    """One batch of pairs probed together; `done` is set when the batch is finished."""

    pairs: list[_Pair] = field(default_factory=list)
    linger: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    last_send: float = 0.0

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def first_replies(self) -> dict[tuple[str, str], float | None]:
        return {(p.src.name, p.dst.name): p.first_reply for p in self.pairs}

    def replies(self) -> dict[tuple[str, str], int]:
        return {(p.src.name, p.dst.name): p.replies for p in self.pairs}

    def own_network_replies(self) -> dict[tuple[str, str], int]:
        return {(p.src.name, p.dst.name): p.own_network_replies for p in self.pairs}

    def unanswered(self) -> list[tuple[str, str]]:
        return sorted((p.src.name, p.dst.name) for p in self.pairs if p.first_reply is None)

    def sent(self) -> int:
        return sum(p.sent for p in self.pairs)


@dataclass
class _VmSockets:
    vm: ProbeVm
    tx: socket.socket
    rx: socket.socket


def _libc_setns() -> Any:  # a ctypes foreign function
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.setns
    fn.argtypes = (ctypes.c_int, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def open_in_netns(netns: str, ifname: str = "eth0") -> tuple[socket.socket, socket.socket]:
    """(tx, rx) sockets created inside `netns`, on a thread of their own that then ends.

    setns(2) changes the namespace of the calling thread only; Python 3.11 has no os.setns,
    so libc's is called through ctypes.
    """
    result: list[tuple[socket.socket, socket.socket]] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc_setns()(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            tx.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", 0xFFFFFFFF))  # receive nothing
            tx.setblocking(False)
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            rx.bind((ifname, ETH_P_IP))
            rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            rx.setblocking(False)
            result.append((tx, rx))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    t = threading.Thread(target=work, name=f"setns-{netns}", daemon=True)
    t.start()
    t.join()
    if failure:
        raise ProbeError(f"cannot open ICMP sockets in namespace {netns}: {failure[0]}")
    return result[0]


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    return total


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, nonce: bytes) -> bytes:
    """An ICMP echo request; the payload is the run's nonce, padded to 8 bytes."""
    payload = nonce.ljust(8, b"\0")
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    csum = _fold(_ones_sum(header + payload))
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ident, seq) + payload


class _EchoTemplate:
    """Echo requests of one pair: only the sequence number (and so the checksum) changes."""

    __slots__ = ("ident", "payload", "base")

    def __init__(self, ident: int, nonce: bytes) -> None:
        self.ident = ident
        self.payload = nonce.ljust(8, b"\0")
        self.base = _ones_sum(struct.pack("!BBHH", ICMP_ECHO_REQUEST, 0, 0, ident)
                              + self.payload)

    def packet(self, seq: int) -> bytes:
        csum = _fold(self.base + seq)
        return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, self.ident, seq) + self.payload


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class IcmpProber:
    """Echo requests from VM namespaces every `interval`; one background thread does it all."""

    def __init__(self, interval: float = INTERVAL_S, check_mac: bool = True) -> None:
        self.interval = interval
        self.check_mac = check_mac  # False: any Ethernet source (no leak classification)
        self.nonce = os.urandom(4)
        self._socks: dict[str, _VmSockets] = {}  # VM name -> sockets
        self._by_rx: dict[int, _VmSockets] = {}
        self._vm_by_mac: dict[str, ProbeVm] = {}
        self._pairs: dict[int, _Pair] = {}  # ICMP identifier -> pair (latest holder)
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
                pair = _Pair(ident, src, dst, budget, session,
                             template=_EchoTemplate(ident, self.nonce))
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
        mac = _mac_text(frame[6:12])
        ttl = frame[22]
        if not self.check_mac:
            mac = pair.dst.mac.lower()
        responder = self._vm_by_mac.get(mac) if self.check_mac else pair.src
        if responder is None or responder.network != pair.src.network:
            self.leaks.append(Leak(pair.src.name, pair.dst.name, mac,
                                   responder.name if responder else None, at))
            return
        if mac != pair.dst.mac.lower() or src_ip != pair.dst.ip:
            pair.own_network_replies += 1
            return
        if pair.dst.ttl is not None and ttl != pair.dst.ttl:
            pair.stale_replies += 1
            return
        pair.replies += 1
        if pair.first_reply is None:
            pair.first_reply = at


# --- as a tool ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_icmp",
                                description="First-reply times of raw ICMP echoes sent from "
                                            "inside a network namespace (root).")
    p.add_argument("--netns", required=True, help="namespace to send from (its eth0)")
    p.add_argument("--mac", action="append", default=[],
                   help="expected MAC of each destination, in order (default: any)")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=INTERVAL_S)
    p.add_argument("dst", nargs="+", help="destination IPv4 addresses")
    args = p.parse_args(argv)
    if args.mac and len(args.mac) != len(args.dst):
        p.error("give --mac once per destination, or not at all")
    if os.geteuid() != 0:
        print("probe_icmp: needs root (raw sockets, setns)", file=sys.stderr)
        return 2
    src = ProbeVm("src", args.netns, "0.0.0.0", "00:00:00:00:00:00", "probe")
    with IcmpProber(args.interval, check_mac=bool(args.mac)) as prober:
        try:
            prober.add_vm(src)
        except ProbeError as exc:
            print(f"probe_icmp: {exc}", file=sys.stderr)
            return 2
        dsts = []
        for i, ip in enumerate(args.dst):
            mac = args.mac[i].lower() if i < len(args.mac) else f"02:00:00:00:00:{i:02x}"
            dst = ProbeVm(f"dst{i}", "", ip, mac, "probe")
            dsts.append(dst)
            prober.add_vm(dst, sockets=False)
        t0 = time.monotonic()
        session = prober.until_answered((src, d) for d in dsts)
        session.wait(args.timeout)
        firsts = session.first_replies()
    out: dict[str, float | None] = {}
    for d in dsts:
        first = firsts[("src", d.name)]
        out[d.ip] = None if first is None else round(first - t0, 6)
    print(json.dumps({"netns": args.netns, "first_reply_s": out, "leaks": len(prober.leaks)}))
    return 0 if all(v is not None for v in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
