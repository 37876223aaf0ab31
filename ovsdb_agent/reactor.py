"""The manager thread's event loop: one epoll for every hypervisor connection.

Used instead of ovs.poller.Poller, which is select()-based: select fails on descriptors above
1023 and makes every wake-up cost O(connections). python-ovs objects still say what they wait
for through their wait(poller) methods; Wants collects that for one party (a connection, the
listener, the waker) and the Reactor runs only the parties whose socket is ready or whose
timer is due. The Waker lets other threads interrupt the wait.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import threading
from typing import Any

import ovs.timeval


class Wants:
    """What one party waits for, gathered through the poller interface that python-ovs's
    wait() methods call (fd_wait, timer_wait, timer_wait_until, immediate_wake)."""

    __slots__ = ("fds", "deadline")

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}
        self.deadline = math.inf  # in ovs.timeval.msec() time

    @classmethod
    def readable(cls, fd: int) -> Wants:
        """Waiting for fd to become readable, and for nothing else."""
        wants = cls()
        wants.fd_wait(fd, select.EPOLLIN)
        return wants

    def fd_wait(self, fd: Any, events: int) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        if fd < 0:  # a socket closed under us: run the connection so it notices
            self.immediate_wake()
            return
        self.fds[fd] = self.fds.get(fd, 0) | events

    def timer_wait(self, msec: float) -> None:
        self.timer_wait_until(ovs.timeval.msec() + msec)

    def timer_wait_until(self, msec: float) -> None:
        self.deadline = min(self.deadline, msec)

    def immediate_wake(self) -> None:
        self.deadline = -math.inf


class Reactor:
    """One epoll for all parties; says which parties have something to do.

    python-ovs POLLIN/POLLOUT have the same values as EPOLLIN/EPOLLOUT.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._party_of: dict[int, int] = {}  # fd -> party
        self._fds: dict[int, dict[int, int]] = {}  # party -> {fd: events}
        self._deadlines: dict[int, float] = {}

    def arm(self, party: int, wants: Wants) -> None:
        old = self._fds.get(party, {})
        for fd in old.keys() - wants.fds.keys():
            self._unregister(fd)
        for fd, events in wants.fds.items():
            if old.get(fd) != events:
                self._register(fd, events, modify=fd in old)
                self._party_of[fd] = party
        self._fds[party] = dict(wants.fds)
        if wants.deadline == math.inf:
            self._deadlines.pop(party, None)
        else:
            self._deadlines[party] = wants.deadline

    def forget(self, party: int) -> None:
        """Call before the party's descriptors are closed (a closed number may be reused)."""
        for fd in self._fds.pop(party, {}):
            self._unregister(fd)
        self._deadlines.pop(party, None)

    def wake_soon(self, party: int) -> None:
        """Run the party in the next round, whatever it waits for."""
        self._deadlines[party] = -math.inf

    def poll(self) -> set[int]:
        due = min(self._deadlines.values(), default=math.inf)
        timeout = -1.0 if due == math.inf else max(0.0, (due - ovs.timeval.msec()) / 1000.0)
        events = self._epoll.poll(timeout)
        ready = {self._party_of[fd] for fd, _ in events if fd in self._party_of}
        now = ovs.timeval.msec()
        ready.update(p for p, deadline in self._deadlines.items() if deadline <= now)
        return ready

    def close(self) -> None:
        self._epoll.close()

    def _register(self, fd: int, events: int, modify: bool) -> None:
        try:
            if modify:
                self._epoll.modify(fd, events)
            else:
                self._epoll.register(fd, events)
        except FileExistsError:
            self._epoll.modify(fd, events)
        except FileNotFoundError:
            self._epoll.register(fd, events)

    def _unregister(self, fd: int) -> None:
        self._party_of.pop(fd, None)
        with contextlib.suppress(OSError):  # python-ovs closed it already: epoll dropped it
            self._epoll.unregister(fd)


class Waker:
    """A self-pipe: any thread may wake(); the loop waits for `fd` and drains it."""

    def __init__(self) -> None:
        self.fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._write_fd: int | None = write_fd  # None once closed
        self._lock = threading.Lock()  # guards _write_fd

    def wake(self) -> None:
        with self._lock:  # held while writing so close() cannot close a number being reused
            if self._write_fd is None:
                return
            with contextlib.suppress(BlockingIOError):  # a full pipe: the loop is awake
                os.write(self._write_fd, b"\0")

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Only once the loop no longer waits for fd; wake() does nothing from then on."""
        with self._lock:
            write_fd, self._write_fd = self._write_fd, None
        if write_fd is not None:
            os.close(write_fd)
        os.close(self.fd)
