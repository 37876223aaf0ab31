"""The manager thread's event loop: one selector for every hypervisor connection.

Used instead of ovs.poller.Poller, which is select()-based: select fails on descriptors
above 1023 and makes every wake-up cost O(connections). A `selectors` selector is epoll on
Linux with native threads, and eventlet's green one under os-ken 3.1's osken-manager, which
monkey-patches `selectors` (and removes `select.epoll`): the same code runs under both.
python-ovs objects still say what they wait for through their wait(poller) methods; Wants
collects that for one party (a connection, the listener, the waker) and the Reactor runs
only the parties whose socket is ready or whose timer is due. The Waker lets other threads
interrupt the wait.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import threading
from typing import Any

import ovs.timeval

POLLIN, POLLPRI, POLLOUT = 0x001, 0x002, 0x004  # poll(2)'s bits, as python-ovs passes them


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
        wants.fd_wait(fd, POLLIN)
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
    """One selector for all parties; says which parties have something to do."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()  # looked up now: eventlet's if patched
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
        events = self._selector.select(None if timeout < 0 else timeout)
        ready = {self._party_of[key.fd] for key, _ in events if key.fd in self._party_of}
        now = ovs.timeval.msec()
        ready.update(p for p, deadline in self._deadlines.items() if deadline <= now)
        return ready

    def close(self) -> None:
        self._selector.close()

    def _register(self, fd: int, events: int, modify: bool) -> None:
        mask = _mask(events)
        try:
            if modify:
                self._selector.modify(fd, mask)
            else:
                self._selector.register(fd, mask)
        except KeyError:  # registered after all, or not: the other call
            if modify:
                self._selector.register(fd, mask)
            else:
                self._selector.modify(fd, mask)

    def _unregister(self, fd: int) -> None:
        self._party_of.pop(fd, None)
        with contextlib.suppress(KeyError, OSError):  # python-ovs closed it already
            self._selector.unregister(fd)


def _mask(events: int) -> int:
    """poll(2) bits (what python-ovs and tls_accept ask for) as a selector's mask; errors
    and hang-ups are reported with readability, as poll(2) reports them anyway."""
    mask = selectors.EVENT_WRITE if events & POLLOUT else 0
    if events & (POLLIN | POLLPRI) or not mask:
        mask |= selectors.EVENT_READ
    return mask


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
        """One read of everything a pipe can hold. Not a loop until EAGAIN: eventlet's green
        os.read (osken-manager) waits on EAGAIN instead of raising it, forever here."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 1 << 16)

    def close(self) -> None:
        """Only once the loop no longer waits for fd; wake() does nothing from then on."""
        with self._lock:
            write_fd, self._write_fd = self._write_fd, None
        if write_fd is not None:
            os.close(write_fd)
        os.close(self.fd)
