"""Fixtures of the OpenFlow transport tests: a real server on loopback and switches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ryu_dove.openflow.server import OpenFlowServer
from tests.unit.openflow.peers import Clock, Switch


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[OpenFlowServer]:
    srv = OpenFlowServer("127.0.0.1", 0, clock=clock)
    yield srv
    srv.close()


@pytest.fixture
def connect(server: OpenFlowServer) -> Iterator[Callable[[], Switch]]:
    switches: list[Switch] = []

    def make() -> Switch:
        switches.append(Switch(server.address))
        return switches[-1]

    yield make
    for s in switches:
        s.sock.close()
