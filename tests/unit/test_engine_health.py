"""Liveness is real: the engine says when its thread died or stalled, the API shows it
without needing that thread, and the process exits non-zero for its service manager."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request

import pytest

from ryu_dove.directory import MemoryDirectory
from ryu_dove.engine import loop
from ryu_dove.engine.loop import Engine, Timing
from ryu_dove.events import ViewRequest
from ryu_dove.northbound import views
from ryu_dove.northbound.api import ApiServer
from tests.unit.test_engine import POLICY


def wait(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def engine():
    eng = Engine(POLICY, MemoryDirectory(), lambda *a: None, Timing(tick_s=0.02))
    yield eng
    eng.stop()


def test_a_running_engine_is_healthy(engine: Engine) -> None:
    assert engine.health() is None  # not started yet: tests drive it by hand
    engine.start()
    assert engine.health() is None


def test_a_stopped_engine_thread_is_reported(engine: Engine) -> None:
    engine.start()
    engine.stop()
    assert engine.health() == "the engine's thread has stopped"


def test_a_stalled_engine_is_reported_and_the_api_says_503(engine: Engine,
                                                           monkeypatch) -> None:
    monkeypatch.setattr(loop, "STALL_S", 0.2)
    release = threading.Event()
    monkeypatch.setattr(views, "build", lambda *a: release.wait(10) and {})
    engine.start()
    api = ApiServer("127.0.0.1", 0, lambda section: {}, engine.health)
    api.start()
    try:
        engine.post(ViewRequest(queue.Queue(1), None))  # blocks the thread
        wait(lambda: engine.health() is not None)
        assert engine.health().startswith("the engine has not finished a batch for")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(api.url + "/v1/health", timeout=5)
        assert answer.value.code == 503
        body = json.loads(answer.value.read())
        assert body["status"] == "failing" and "has not finished a batch" in body["reason"]
        release.set()
        wait(lambda: engine.health() is None)
    finally:
        release.set()
        api.stop()
