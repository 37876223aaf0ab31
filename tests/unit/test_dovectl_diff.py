"""dovectl diff: the paths a policy change opens and closes and the flows it would move,
before anything is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ryu_dove.cli.dovectl import main
from ryu_dove.northbound.api import ApiServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "example.yaml"
TCP_RULE = "      - allow: {from: web, to: db, proto: tcp, port: 5432}\n"
HV1 = {"name": "hv1", "state": "connected", "tep_ip": "192.0.2.1", "dpid": "0000000000000001",
       "ovsdb": True, "openflow": True, "last_heard": None, "flows_desired": 1,
       "flows_installed": 1, "in_sync": True, "foreign_flows": 0, "flows_rejected": 0}
HV2 = {**HV1, "name": "hv2", "tep_ip": "192.0.2.2", "dpid": "0000000000000002"}
HV3 = {**HV1, "name": "hv3", "tep_ip": "192.0.2.3", "dpid": "0000000000000003"}
TUNNELS = [{"hypervisor": a, "remote": b, "remote_ip": f"192.0.2.{b[-1]}", "port": f"dv-{b}",
            "ofport": 10 + int(b[-1])} for a in ("hv1", "hv2", "hv3")
           for b in ("hv1", "hv2", "hv3") if a != b]
ENDPOINTS = [
    {"network": "acme/web", "mac": "02:00:00:00:00:01", "ips": ["198.51.100.10"],
     "hypervisor": "hv1", "port": "vif-web", "ofport": 3, "iface_id": "web"},
    {"network": "acme/db", "mac": "02:00:00:00:00:02", "ips": ["198.51.100.70"],
     "hypervisor": "hv2", "port": "vif-db", "ofport": 3, "iface_id": "db"},
    {"network": "globex/web", "mac": "02:00:00:00:00:03", "ips": ["198.51.100.10"],
     "hypervisor": "hv3", "port": "vif-gx", "ofport": 3, "iface_id": "gx"},
]
VIEWS = {"hypervisors": [HV1, HV2, HV3], "tunnels": TUNNELS, "endpoints": ENDPOINTS}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ApiServer("127.0.0.1", 0, lambda section: VIEWS)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def without_tcp(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    assert TCP_RULE in text
    path = tmp_path / "new.yaml"
    path.write_text(text.replace(TCP_RULE, ""))
    return path


def test_from_the_policies_alone_paths_and_each_tenant_s_routing_flows(
        without_tcp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(EXAMPLE), str(without_tcp)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "closes acme: web -> db tcp port 5432"
    (flows,) = [line for line in lines if line.startswith("flows")]
    assert flows.startswith("flows  tenant acme: +0 -") and not flows.endswith("-0")
    assert main(["diff", str(without_tcp), str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "opens  acme: web -> db tcp port 5432"


def test_against_a_running_controller_flows_per_hypervisor(
        without_tcp: Path, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(EXAMPLE), str(without_tcp), "--api", api]) == 0
    flows = {line.split(":")[0].split()[-1]: line.split(": ")[1]
             for line in capsys.readouterr().out.splitlines() if line.startswith("flows")}
    assert flows["hv3"] == "+0 -0"  # globex only: nothing moves
    for hv in ("hv1", "hv2"):  # acme's web and db: the rule's flows go
        added, deleted = flows[hv].split()
        assert added == "+0" and deleted != "-0", (hv, flows[hv])


def test_no_change_says_so_and_a_bad_policy_is_refused_with_its_position(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(EXAMPLE), str(EXAMPLE)]) == 0
    assert "no path opens or closes" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [\n")
    assert main(["diff", str(EXAMPLE), str(bad)]) == 2
    assert f"{bad}:" in capsys.readouterr().err


def test_an_unreachable_api_is_a_clear_failure(without_tcp: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(EXAMPLE), str(without_tcp), "--api",
                 "http://127.0.0.1:9"]) == 1
    assert "dovectl diff:" in capsys.readouterr().err


def test_an_api_answering_nonsense_is_a_clear_failure_not_a_traceback(
        without_tcp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = {"hypervisors": [{**HV1, "dpid": "not hex"}], "tunnels": [], "endpoints": [{}]}
    server = ApiServer("127.0.0.1", 0, lambda section: broken)
    server.start()
    try:
        assert main(["diff", str(EXAMPLE), str(without_tcp), "--api", server.url]) == 1
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert "answered lists without the fields of docs/api.md" in err and "Traceback" not in err
