"""What the lab waits for: switches in sync (from API items), processes gone; no root, no lab."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from dove_lab.controller_watch import lagging_hypervisors, not_in_sync
from dove_lab.ovs_instance import alive, stop_pid, stop_pids

IN_SYNC = {"ovsdb": True, "openflow": True, "in_sync": True, "state": "connected"}


def test_a_hypervisor_is_waited_for_until_both_channels_are_up_and_its_flows_in_sync():
    seen = [{"name": "hv1", **IN_SYNC},
            {"name": "hv2", **IN_SYNC, "openflow": False, "in_sync": False,
             "state": "degraded"},
            {"name": "hv3", **IN_SYNC, "in_sync": False},
            {"name": "hv4", "ovsdb": True, "openflow": True}]  # before `in_sync` existed
    assert lagging_hypervisors(seen, ["hv1", "hv2", "hv3", "hv4", "hv5"]) == {
        "hv2": "OpenFlow not connected, flows not in sync, state degraded",
        "hv3": "flows not in sync, state connected",
        "hv4": "flows not in sync",
        "hv5": "not known to the controller",
    }
    assert lagging_hypervisors(seen, ["hv1"]) == {}


def test_an_api_that_does_not_answer_leaves_everyone_waiting():
    assert lagging_hypervisors([], ["hv1"]) == {"hv1": "not known to the controller"}


def test_a_failed_wait_names_each_hypervisor_and_what_it_lacks():
    message = not_in_sync({"hv2": "flows not in sync", "hv1": "OVSDB not connected"}, 30)
    assert message == ("after 30 s, hypervisors still not in sync with the controller: "
                       "hv1 (OVSDB not connected); hv2 (flows not in sync)")
    assert not_in_sync({}, 30) == ("after 30 s, the controller still does not call itself "
                                   "synchronised (every hypervisor waited for is in sync)")


def _child(code: str) -> subprocess.Popen[bytes]:
    """A Python child that says "ready" once it runs `code`'s set-up, then sleeps."""
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nprint('ready', flush=True)\n"
                             "import time\nwhile True: time.sleep(1)"],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_stop_pid_returns_once_the_process_is_gone():
    proc = _child("")
    try:
        assert stop_pid(proc.pid, timeout=5.0)
        assert not alive(proc.pid)  # our zombie until reaped: gone all the same
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_stop_pids_kills_what_ignores_sigterm_and_waits_for_it():
    stubborn = _child("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    polite = _child("")
    try:
        started = time.monotonic()
        assert stop_pids([stubborn.pid, polite.pid], timeout=0.3)
        assert time.monotonic() - started < 5.0
        assert not alive(stubborn.pid) and not alive(polite.pid)
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert polite.wait(timeout=5) == -signal.SIGTERM
    finally:
        for proc in (stubborn, polite):
            proc.kill()
            proc.wait()


def test_a_zombie_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Exited, not reaped: still our zombie, so its pid can name nobody else meanwhile.
        deadline = time.monotonic() + 10
        while alive(proc.pid):
            assert time.monotonic() < deadline, "the child should exit"
            time.sleep(0.01)
        assert stop_pid(proc.pid)
    finally:
        proc.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_first_signal_can_be_chosen(sig):
    proc = _child("")
    try:
        assert stop_pid(proc.pid, timeout=5.0, sig=sig)
        assert proc.wait(timeout=5) == -sig
    finally:
        proc.kill()
        proc.wait()
