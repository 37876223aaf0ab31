"""What a hypervisor's OVSDB server sends is framed and parsed totally
(ovsdb_agent.jsonrpc_framing): bounded in size and depth, any bytes at all end in a message
or a closed connection, never an exception out of recv()."""

from __future__ import annotations

import errno
import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovsdb_agent import jsonrpc_framing
from ovsdb_agent.jsonrpc_framing import Framer, FramingConnection, FramingError
from ovsdb_agent.manager import OvsdbManager

UPDATE = {"method": "update", "params": [None, {"Interface": {"u1": {"new": {"name": "vif1"}}}}],
          "id": None}


def test_a_message_over_the_limit_is_refused_before_it_ends(monkeypatch) -> None:
    monkeypatch.setattr(jsonrpc_framing, "MAX_MESSAGE", 1000)
    framer = Framer()
    framer.feed('{"method": "update", "params": ["')
    with pytest.raises(FramingError, match="longer than 1000 characters"):
        for _ in range(100):
            framer.feed("x" * 100)  # never terminated, as the 600 MiB attack


def test_whole_messages_under_the_limit_reset_the_count(monkeypatch) -> None:
    monkeypatch.setattr(jsonrpc_framing, "MAX_MESSAGE", 200)
    framer = Framer()
    for _ in range(50):  # 50 messages of ~100 characters: 5,000 in all, each one small
        framer.feed(json.dumps(UPDATE))
        assert json.loads(framer.next() or "") == UPDATE


def test_nesting_deeper_than_ovsdb_ever_does_is_refused() -> None:
    with pytest.raises(FramingError, match="nested more than 64 deep"):
        Framer().feed("[" * 65)


class _Stream:
    """Bytes as a python-ovs stream would hand them over."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.name = "tcp:fuzz"

    def recv(self, n: int) -> tuple[int, bytes]:
        if not self.chunks:
            return errno.EAGAIN, b""
        return 0, self.chunks.pop(0)

    def close(self) -> None:
        pass


def drain(conn: FramingConnection) -> None:
    for _ in range(100):
        error, _msg = conn.recv()
        if error:
            return


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_any_bytes_end_in_messages_or_a_closed_connection(chunks: list[bytes]) -> None:
    drain(FramingConnection(_Stream(chunks)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=20))
def test_any_json_value_is_a_message_or_a_protocol_error(value: object) -> None:
    conn = FramingConnection(_Stream([json.dumps(value).encode()]))
    error, msg = conn.recv()
    assert (error, msg is None) in ((0, False), (errno.EPROTO, True), (errno.EAGAIN, True))


def test_too_many_silent_connections_are_refused(monkeypatch) -> None:
    from ovsdb_agent import manager as mgr
    monkeypatch.setattr(mgr, "MAX_UNREPORTED", 2)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    manager = OvsdbManager(f"ptcp:{port}:127.0.0.1", lambda r: None, lambda c: None)
    manager.start()
    peers = []
    try:
        for _ in range(4):  # they never answer the manager's monitor request
            peers.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        deadline = time.monotonic() + 5
        while manager.refused_connections < 2:
            assert time.monotonic() < deadline, "no connection refused"
            time.sleep(0.02)
        assert peers[3].recv(1) == b""  # closed at once
    finally:
        for peer in peers:
            peer.close()
        manager.stop()


def test_unfinished_messages_are_bounded_together_and_released() -> None:
    budget = jsonrpc_framing.PendingBudget(1000)
    a, b = Framer(budget), Framer(budget)
    a.feed('{"method": "update", "params": ["' + "x" * 600)  # each under the 64 Mi limit
    with pytest.raises(FramingError, match="all connections together"):
        b.feed('{"method": "update", "params": ["' + "x" * 600)
    a.release()
    b.release()
    assert budget.used == 0
    c = Framer(budget)
    c.feed(json.dumps(UPDATE))  # whole messages do not count
    assert budget.used == 0 and c.next() is not None
