"""The OpenFlow transport's bounds, against peers that behave badly on purpose: echo floods
that never read their answers, more connections than allowed, a listener out of
descriptors. Real TCP on loopback, as in test_server."""

from __future__ import annotations

import contextlib
import errno
import logging
import time

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from ovsdb_agent.peerlog import RateLimit, printable
from ryu_dove.openflow import connection as ofconn
from ryu_dove.openflow import server as ofserver
from tests.unit.openflow.peers import HEADER, up


def test_an_echo_flood_that_never_reads_costs_bounded_memory(server, connect) -> None:
    switch = connect()
    conn = up(server, switch)
    switch.sock.setblocking(False)
    echo = HEADER.pack(4, ofp.OFPT_ECHO_REQUEST, 65535, 1) + bytes(65527)  # 64 kB asked back
    sent, deadline, worst = 0, time.monotonic() + 5, 0
    while sent < 64 << 20 and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):  # it stopped reading us: the point
            sent += switch.sock.send(echo)
        server.poll(0.001)
        worst = max(worst, conn.backlog)
    assert conn.state is ofconn.State.UP  # not dropped: it is only slow
    assert sent < 64 << 20, "the controller kept reading a peer that never reads"
    assert worst < ofconn.READ_PAUSE + 2 * ofconn.RECV_SIZE, worst


def test_connections_past_the_handshake_limit_are_refused_at_once(server, connect,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr(ofserver, "MAX_HANDSHAKING", 3)
    silent = [connect() for _ in range(5)]  # they never say HELLO
    deadline = time.monotonic() + 5
    while server.refused_connections < 2:
        assert time.monotonic() < deadline, "no connection refused"
        server.poll(0.02)
    assert len(server.connections) == 3
    assert all(s.closed_by_peer() for s in silent[3:])


def test_a_switch_that_finished_its_handshake_does_not_count_as_pending(server, connect,
                                                                       monkeypatch) -> None:
    monkeypatch.setattr(ofserver, "MAX_HANDSHAKING", 1)
    up(server, connect())
    up(server, connect(), 2)  # would be refused if the first still counted
    assert len(server.connections) == 2 and server.refused_connections == 0


def test_accept_failing_pauses_the_listener_then_resumes(server, clock, connect) -> None:
    server._pause_accepting(OSError(errno.EMFILE, "Too many open files"))
    switch = connect()
    server.poll(0.1)
    assert not server.connections  # waiting in the kernel's queue, not accepted
    clock.now += ofserver.ACCEPT_BACKOFF_S
    deadline = time.monotonic() + 5
    while not server.connections:
        assert time.monotonic() < deadline
        server.poll(0.02)
    assert switch.sock.recv(8)[1] == ofp.OFPT_HELLO


def test_peer_text_is_escaped_and_cut() -> None:
    assert printable("hv1") == "hv1"
    assert printable("evil\nFAKE LOG LINE") == "evil\\nFAKE LOG LINE"
    assert printable("\x1b[2Jgone") == "\\x1b[2Jgone"
    assert printable("é") == "\\xe9"
    assert printable("a" * 300).endswith("...") and len(printable("a" * 300)) == 203


def test_a_rate_limit_lets_a_few_through_then_counts(caplog) -> None:
    now = [0.0]
    limit = RateLimit(logging.getLogger("t"), burst=2, interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "t"):
        for i in range(50):
            limit.log(logging.WARNING, "kind", "bad peer %d", i)
        now[0] = 10.0
        limit.log(logging.WARNING, "kind", "bad peer again")
    assert [r.getMessage() for r in caplog.records] == [
        "bad peer 0", "bad peer 1", "bad peer again (48 more like this not logged)"]


@pytest.mark.parametrize("text", ["ok", "x" * 10])
def test_plain_text_is_left_alone(text: str) -> None:
    assert printable(text) == text


def test_the_sum_of_backlogs_is_bounded_by_dropping_the_most_owed(server, connect, clock,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(ofserver, "MAX_TOTAL_BACKLOG", 3 << 20)
    big, small = connect(), connect()
    big_conn, small_conn = up(server, big), up(server, small, 2)
    chunk = HEADER.pack(4, ofp.OFPT_BARRIER_REQUEST, 8, 1) * 8192  # 64 kB; nobody reads
    for _ in range(160):  # 10 MB: more than loopback's buffers hold
        big_conn.send(chunk)
    for _ in range(16):
        small_conn.send(chunk)
    assert big_conn.backlog + small_conn.backlog > 3 << 20
    clock.now += ofserver.TICK_S
    server.poll(0.0)
    assert big_conn.state is ofconn.State.CLOSED and "owed more than 3 MiB" in \
        big_conn.close_reason
    assert small_conn.state is ofconn.State.UP
