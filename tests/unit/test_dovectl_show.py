"""dovectl show against a real ApiServer with a fake view, in-process and as a command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ryu_dove.cli import dovectl
from ryu_dove.cli.dovectl import main
from ryu_dove.northbound.api import ApiServer
from tests.api_samples import HV1, HV2, REFUSED, TUN12, TUN21

ROOT = Path(__file__).resolve().parents[2]

EP1 = {"network": "acme/web", "mac": "02:00:00:00:00:01", "ips": ["198.51.100.10", "2001:db8::a"],
       "hypervisor": "hv1", "port": "vif-vm1", "ofport": 3, "iface_id": "vm1",
       "addresses": "declared", "learned_at": [], "standby": False}
EP2 = {"network": "acme/db", "mac": "02:00:00:00:00:02", "ips": ["198.51.100.70"],
       "hypervisor": "hv2", "port": "vif-vm2", "ofport": None, "iface_id": "vm2",
       "addresses": "learning", "learned_at": ["2026-12-05T01:02:03Z"], "standby": True}
VIEWS: Mapping[str, Any] = {
    "endpoints": [EP1, EP2], "hypervisors": [HV1, HV2], "tunnels": [TUN12, TUN21],
    "refused": [REFUSED], "controller": {"version": "0.1.0"},
}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ApiServer("127.0.0.1", 0, lambda section: VIEWS)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def closed_url() -> str:
    """A local port nobody listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(autouse=True)
def _no_env_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOVE_API", raising=False)


def show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["show", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DOVE_API"}
    return subprocess.run(
        [sys.executable, "-m", "ryu_dove.cli.dovectl", *args],
        cwd=ROOT, env={**environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_endpoints_table(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = show(capsys, "endpoints", "--api", api)
    assert (code, err) == (0, "")
    assert table(out) == [
        ["NETWORK", "MAC", "IPS", "HYPERVISOR", "PORT", "OFPORT", "IFACE_ID", "ADDRESSES",
         "LEARNED_AT", "STANDBY"],
        ["acme/web", "02:00:00:00:00:01", "198.51.100.10,2001:db8::a", "hv1", "vif-vm1", "3",
         "vm1", "declared", "-", "no"],
        ["acme/db", "02:00:00:00:00:02", "198.51.100.70", "hv2", "vif-vm2", "-", "vm2",
         "learning", "2026-12-05T01:02:03Z", "yes"],
    ]
    lines = out.splitlines()  # aligned: every column starts where its header does
    for header in ("MAC", "HYPERVISOR", "IFACE_ID"):
        at = lines[0].index(header)
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in lines)


def test_hypervisors_table_says_yes_no(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, "hypervisors", "--api", api)
    assert code == 0
    assert table(out) == [
        ["NAME", "STATE", "TEP_IP", "DPID", "OVSDB", "OPENFLOW", "LAST_HEARD", "FLOWS_DESIRED",
         "FLOWS_INSTALLED", "IN_SYNC", "FOREIGN_FLOWS", "FLOWS_REJECTED"],
        ["hv1", "connected", "192.0.2.1", "0000a2b3c4d5e6f7", "yes", "yes",
         "2026-12-04T19:00:00Z", "40", "40", "yes", "0", "0"],
        ["hv2", "degraded", "192.0.2.2", "-", "yes", "no", "2026-12-04T19:00:00Z", "40", "0",
         "no", "0", "0"],
    ]


def test_tunnels_and_refused_tables(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert table(show(capsys, "tunnels", "--api", api)[1]) == [
        ["HYPERVISOR", "REMOTE", "REMOTE_IP", "PORT", "OFPORT"],
        ["hv1", "hv2", "192.0.2.2", "dv-c0000202", "5"],
        ["hv2", "hv1", "192.0.2.1", "dv-c0000201", "6"],
    ]
    out = show(capsys, "refused", "--api", api)[1]
    assert out.splitlines()[0].split() == ["HYPERVISOR", "PORT", "IFACE_ID", "REASON"]
    assert out.splitlines()[1].endswith("  unknown network 'acme/nope'")


@pytest.mark.parametrize("what", ["endpoints", "hypervisors", "tunnels", "refused"])
def test_json_round_trips(api: str, what: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, what, "--api", api, "--json")
    assert code == 0
    assert json.loads(out) == VIEWS[what]
    assert out == json.dumps(VIEWS[what], indent=2) + "\n"


def test_filters(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = show(capsys, "endpoints", "--api", api, "--json", "--network", "acme/web")[1]
    assert json.loads(out) == [EP1]
    out = show(capsys, "endpoints", "--api", api, "--json", "--hypervisor", "hv2")[1]
    assert json.loads(out) == [EP2]
    out = show(capsys, "tunnels", "--api", api, "--json", "--hypervisor", "hv1")[1]
    assert json.loads(out) == [TUN12]
    out = show(capsys, "endpoints", "--api", api, "--network", "acme/web", "--hypervisor", "hv2")[1]
    assert table(out) == [["NETWORK", "MAC", "IPS", "HYPERVISOR", "PORT", "OFPORT", "IFACE_ID",
                           "ADDRESSES", "LEARNED_AT", "STANDBY"]]


def test_filter_that_does_not_apply_is_invalid(api: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert show(capsys, "tunnels", "--api", api, "--network", "acme/web") == (
        2, "", "dovectl show: --network does not apply to tunnels\n")


def test_api_from_environment(api: str, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOVE_API", api + "/")
    code, out, _ = show(capsys, "tunnels", "--json")
    assert code == 0 and json.loads(out) == VIEWS["tunnels"]


def test_default_api(monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(dovectl, "DEFAULT_API", "http://127.0.0.1:1")
    code, _, err = show(capsys, "endpoints")
    assert code == 1 and "at http://127.0.0.1:1: " in err


def test_unreachable(closed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = show(capsys, "endpoints", "--api", closed_url)
    assert (code, out) == (1, "")
    assert err.startswith(f"dovectl: cannot reach the controller API at {closed_url}: "
                          "Connection refused\n")
    assert "--api" in err and "DOVE_API" in err and "dove-lab status" in err


def test_timeout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(dovectl, "TIMEOUT_S", 0.2)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = show(capsys, "hypervisors", "--api", url)
    assert code == 1
    assert err.startswith(f"dovectl: cannot reach the controller API at {url}: timed out\n")


def test_http_error_shows_the_api_message(capsys: pytest.CaptureFixture[str]) -> None:
    server = ApiServer("127.0.0.1", 0, lambda section: {})  # nothing: every resource fails
    server.start()
    url = server.url
    try:
        code, out, err = show(capsys, "refused", "--api", url)
    finally:
        server.stop()
    assert (code, out) == (1, "")
    assert err == (f"dovectl: the controller API at {url} answered 500: "
                   "internal error: KeyError: 'refused'\n")


def test_not_an_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = show(capsys, "endpoints", "--api", "127.0.0.1:8080")
    assert code == 2 and "must be an http:// URL" in err


def test_subprocess_table_and_json(api: str) -> None:
    done = run_cli("show", "hypervisors", "--api", api)
    assert (done.returncode, done.stderr) == (0, "")
    assert table(done.stdout)[2] == ["hv2", "degraded", "192.0.2.2", "-", "yes", "no",
                                     "2026-12-04T19:00:00Z", "40", "0", "no", "0", "0"]
    done = run_cli("show", "endpoints", "--json", "--network", "acme/db", env={"DOVE_API": api})
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == [EP2]


def test_subprocess_unreachable(closed_url: str) -> None:
    done = run_cli("show", "tunnels", "--api", closed_url)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"dovectl: cannot reach the controller API at {closed_url}:")
    assert "Traceback" not in done.stderr


def test_subprocess_bad_arguments() -> None:
    done = run_cli("show", "flows")
    assert done.returncode == 2
    assert "usage: dovectl show" in done.stderr and "Traceback" not in done.stderr
