"""A VM's two sockets, opened inside its network namespace: raw ICMP to send (receiving
nothing) and AF_PACKET on its eth0 to receive every IPv4 frame with the kernel's timestamp."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from typing import Any

from benchmarks.probe_icmp.base import ProbeError

CLONE_NEWNET = 0x40000000
SOL_RAW = 255
ICMP_FILTER = 1
SOL_PACKET = 263
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD on x86-64 and arm64: struct timespec of two longs
PACKET_OUTGOING = 4
ETH_P_IP = 0x0800
NETNS_DIR = "/run/netns"


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
