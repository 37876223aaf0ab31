"""The API's bounds against clients that misbehave: idle connections are dropped, and no
more than MAX_CLIENTS are served at once (a thread each)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ryu_dove.northbound import api as api_module
from ryu_dove.northbound.api import ApiServer


@pytest.fixture
def server(monkeypatch) -> Iterator[ApiServer]:
    monkeypatch.setattr(api_module, "IDLE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(api_module._Handler, "timeout", 0.3)
    monkeypatch.setattr(api_module, "MAX_CLIENTS", 2)
    srv = ApiServer("127.0.0.1", 0, lambda section: {"controller": {}})
    srv.start()
    yield srv
    srv.stop()


def address(srv: ApiServer) -> tuple[str, int]:
    host, port = srv.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_an_idle_client_is_dropped(server: ApiServer) -> None:
    idle = socket.create_connection(address(server), timeout=5)
    started = time.monotonic()
    assert idle.recv(1) == b""  # closed by the server, not by us
    assert time.monotonic() - started < 4
    idle.close()


def test_clients_over_the_limit_are_closed_and_the_api_recovers(server: ApiServer) -> None:
    hogs = [socket.create_connection(address(server), timeout=5) for _ in range(2)]
    third = socket.create_connection(address(server), timeout=5)
    assert third.recv(1) == b""  # refused at once: no thread for it
    for hog in hogs:
        hog.close()
    deadline = time.monotonic() + 5
    while True:  # the hogs' threads end, and the API serves again
        try:
            with urllib.request.urlopen(server.url + "/v1/health", timeout=5) as answer:
                assert json.loads(answer.read()) == {"status": "ok"}
                break
        except (ConnectionError, urllib.error.URLError):
            assert time.monotonic() < deadline, "the API did not recover"
            time.sleep(0.05)
