"""The benchmarks' command lines, parsers and reports: no root, no lab."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import common, dataplane
from benchmarks.dataplane import quiet
from dove_lab.lab import Lab
from dove_lab.state import VmState

PING = """PING 198.51.100.11 (198.51.100.11) 56(84) bytes of data.
64 bytes from 198.51.100.11: icmp_seq=1 ttl=64 time=1.02 ms
64 bytes from 198.51.100.11: icmp_seq=2 ttl=64 time=0.491 ms
64 bytes from 198.51.100.11: icmp_seq=3 ttl=64 time=0.657 ms

--- 198.51.100.11 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 403ms
rtt min/avg/max/mdev = 0.491/0.721/1.016/0.219 ms
"""


def iperf_json(received: float = 1.5e9, retransmits: int = 7, streams: int = 1) -> str:
    return json.dumps({"start": {}, "intervals": [], "end": {
        "streams": [{}] * streams,
        "sum_sent": {"bits_per_second": received * 1.01, "retransmits": retransmits},
        "sum_received": {"bits_per_second": received},
        "cpu_utilization_percent": {"host_total": 12.5, "remote_total": 30.0}}})


def test_defaults():
    args = dataplane.parse_args([])
    assert (args.json, args.seconds, args.connections, args.rounds) == (False, 10.0, 100, 3)
    assert args.policy.endswith("policies/example.yaml")
    assert args.pin and not dataplane.parse_args(["--no-pin"]).pin


def test_options():
    args = dataplane.parse_args(["--json", "--seconds", "2.5", "--connections", "128",
                                 "--rounds", "1"])
    assert (args.json, args.seconds, args.connections, args.rounds) == (True, 2.5, 128, 1)


@pytest.mark.parametrize("argv", [["--seconds", "0"], ["--seconds", "-1"], ["--seconds", "x"],
                                  ["--seconds", "nan"], ["--connections", "0"],
                                  ["--connections", "129"], ["--connections", "1.5"],
                                  ["--rounds", "0"], ["--bogus"]])
def test_bad_options_exit_2_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        dataplane.parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_parse_ping_and_summary():
    rtts = dataplane.parse_ping(PING)
    assert rtts == [1.02, 0.491, 0.657]
    summary = dataplane.rtt_summary(rtts, sent=4)
    assert summary["avg"] == pytest.approx(0.723, abs=1e-3)
    assert (summary["min"], summary["max"], summary["p99"]) == (0.491, 1.02, 1.02)
    assert summary["mdev"] == pytest.approx(0.221, abs=1e-3)  # ping's mdev: population std dev
    assert summary["loss_pct"] == 25.0


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert dataplane.percentile(values, 99) == 99.0
    assert dataplane.percentile(values, 50) == 50.0
    assert dataplane.percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        dataplane.percentile([], 50)


def test_parse_iperf():
    result = dataplane.parse_iperf(iperf_json(received=1.5e9, retransmits=7, streams=100))
    assert result.mbps == pytest.approx(1500.0)
    assert (result.retransmits, result.streams, result.cpu_receiver_pct) == (7, 100, 30.0)


@pytest.mark.parametrize("text, message", [
    (json.dumps({"error": "unable to connect to server: Connection refused"}), "refused"),
    ("iperf3: error - unable to connect", "no JSON"),
    (json.dumps({"end": {}}), "end sums"),
])
def test_parse_iperf_failures_say_why(text, message):
    with pytest.raises(common.BenchmarkError, match=message):
        dataplane.parse_iperf(text)


def test_count_megaflows_skips_headers():
    dump = ("flow-dump from the main thread:\n"
            "recirc_id(0),in_port(4),eth_type(0x0800), packets:1, bytes:2, used:0.1s, actions:1\n"
            "recirc_id(0),in_port(1),eth_type(0x86dd), packets:0, bytes:0, used:never, "
            "actions:drop\n"
            "flow-dump from pmd on cpu core: 1\n")
    assert dataplane.count_megaflows(dump) == 2
    assert dataplane.count_megaflows("") == 0


def test_cpu_usage_from_snapshots():
    tck = dataplane.CLK_TCK
    before = dataplane.CpuSnapshot(
        0.0, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        {"ovs-vswitchd@hv1": {10: ("ovs-vswitchd", 0), 11: ("handler1", 0)}})
    after = dataplane.CpuSnapshot(
        2.0, (50, 0, 100, 40, 10, 0, 0, 0, 0, 0),  # 200 ticks: 75% busy
        {"ovs-vswitchd@hv1": {10: ("ovs-vswitchd", tck), 11: ("handler1", 0),
                              12: ("revalidator2", tck // 10)}})
    usage = dataplane.cpu_usage(before, after)
    assert usage["machine"]["busy_pct"] == 75.0
    assert usage["machine"]["system_pct"] == 50.0
    proc = usage["processes"]["ovs-vswitchd@hv1"]
    assert proc["busiest_threads"] == {"ovs-vswitchd": 50.0, "revalidator2": 5.0}
    assert proc["pct_of_one_core"] == 55.0
    assert dataplane.average_usage([usage, usage]) == usage


def test_lab_names_are_fresh_and_valid(monkeypatch):
    monkeypatch.setattr(common, "lab_exists", lambda name: False)
    names = {common.lab_name("bd") for _ in range(20)}
    assert len(names) > 1
    assert all(re.fullmatch(r"bd[0-9a-f]{6}", n) for n in names)
    with pytest.raises(ValueError):
        common.lab_name("Bad-")


def test_lab_name_never_picks_an_existing_lab(monkeypatch):
    taken: list[str] = []

    def exists(name: str) -> bool:
        taken.append(name)
        return len(taken) < 3  # the first two candidates are in use

    monkeypatch.setattr(common, "lab_exists", exists)
    assert common.lab_name("bp") == taken[-1]
    assert len(taken) == 3


def test_machine_facts_and_command_line():
    facts = common.machine_facts()
    assert {"cpu_model", "nproc", "kernel", "ovs_version", "python_version"} <= facts.keys()
    assert facts["nproc"] >= 1
    assert common.command_line()


def test_not_root_fails_clearly(monkeypatch, capsys):
    monkeypatch.setattr(common.os, "geteuid", lambda: 1000)
    assert dataplane.main(["--seconds", "1"]) == 1
    assert "needs root" in capsys.readouterr().err


def test_missing_iperf3_fails_clearly(monkeypatch, capsys):
    real_which = common.shutil.which
    monkeypatch.setattr(common.os, "geteuid", lambda: 0)
    monkeypatch.setattr(common.shutil, "which",
                        lambda tool: None if tool == "iperf3" else real_which(tool) or tool)
    assert dataplane.main([]) == 1
    assert "apt-get install -y iperf3" in capsys.readouterr().err


def _side(label: str, lab: str, mbps: list[float]) -> dataplane.Side:
    vm = VmState(name="vm1", hypervisor="hv1", network="acme/web", ip="198.51.100.10",
                 prefixlen=26, gateway="198.51.100.1", mac="02:00:00:00:00:01",
                 netns=f"dove-{lab}.vm1", port="vif-vm1")
    dst = VmState(**{**vm.__dict__, "name": "vm2", "hypervisor": "hv2", "ip": "198.51.100.11"})
    side = dataplane.Side(label, Lab(lab), vm, dst)
    for m in mbps:
        side.mbps.append(m)
        side.runs.append(dataplane.parse_iperf(iperf_json(received=m * 1e6)))
    side.rtts, side.pings_sent = [0.5, 0.6, 0.7], 3
    side.parallel = dataplane.parse_iperf(iperf_json(received=1e9, streams=100))
    side.megaflows_hv1, side.megaflows_hv2 = [4, 5], [4]
    side.cpu = [{"machine": {"busy_pct": 99.0, "user_pct": 10.0, "system_pct": 60.0,
                             "softirq_pct": 29.0, "steal_pct": 0.0},
                 "processes": {"ovs-vswitchd@hv1": {"pct_of_one_core": 80.0,
                                                    "busiest_threads": {"ovs-vswitchd": 80.0}}}}]
    return side


def test_report_and_human_summary():
    dove, plain = _side("dove", "bd000001", [900, 1000, 950]), _side("plain", "bp000001",
                                                                      [1000, 1000, 990])
    dove.packet_ins_before, dove.packet_ins_after = 3, 3
    args = dataplane.parse_args(["--rounds", "3"])
    result = dataplane.report(args, dove, plain, elapsed=12.0)
    json.dumps(result)  # one JSON object, nothing unserialisable
    assert (result["dove_mbps"], result["plain_mbps"]) == (950.0, 1000.0)
    assert result["ratio"] == 0.95 and result["ratio_met"] is True
    assert result["megaflows"] == {"dove": 5, "plain": 5}
    assert result["packet_ins_steady"] == 0
    assert result["dove_rtt_ms"]["echoes"] == 3
    text = dataplane.human(result)
    assert "ratio 0.950" in text and "meets target" in text
    assert "ovs-vswitchd@hv1 80% (ovs-vswitchd 80%)" in text


def test_background_quiet_machine(monkeypatch):
    monkeypatch.setattr(quiet, "other_labs", lambda mine=(): [])
    monkeypatch.setattr(quiet, "machine_busy_pct", lambda interval=1.0: 3.0)
    said: list[str] = []
    assert quiet.background(0.0, said.append) == {
        "busy_pct_before": 3.0, "other_labs_before": [], "quiet": True}
    assert said == []


def test_background_busy_machine_warns_after_waiting(monkeypatch):
    busy = iter([50.0, 40.0, 30.0])
    monkeypatch.setattr(quiet, "other_labs", lambda mine=(): ["t1a2b3c"])
    monkeypatch.setattr(quiet, "machine_busy_pct", lambda interval=1.0: next(busy))
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(quiet.time, "monotonic", lambda: next(clock))
    said: list[str] = []
    load = quiet.background(2.5, said.append)
    assert load["quiet"] is False and load["other_labs_before"] == ["t1a2b3c"]
    assert said[0].startswith("waiting up to 2 s") and said[-1].startswith("WARNING")


def test_engine_alone_runs_a_small_world_to_the_end(capsys):
    from benchmarks import engine_alone

    assert engine_alone.main(["--switches", "6", "--tenants", "2", "--spread", "3",
                              "--events", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["switches_in_sync"] == 6 and result["flow_mods"] > 0
    assert result["event_ms"]["p50"] > 0 and result["events_per_s"] > 0


# --- benchmarks.convergence: options, VM plan, log timeline, reports (no lab) -------------------

def _convergence_result(h: int = 2, disturbed: bool = False) -> dict:
    timeline = {"plug_txn_done_s": 0.0239, "first_endpoint_s": 0.0153, "last_endpoint_s": 0.0223,
                "bundles": 3, "flows_added": 76, "first_bundle_s": 0.0203,
                "last_bundle_s": 0.0263, "first_reply_s": 0.0443, "median_reply_s": 0.0445,
                "last_reply_s": 0.0447}
    return {"hypervisors": h, "vms_per_hypervisor": 2, "vms": 2 * h, "same_network_pairs": 4,
            "converge_s": 0.0447, "add_vm_s": 0.0305, "migrate_s": [0.021],
            "migrate_s_median": 0.021, "migrate_s_max": 0.021, "migrate_preplugged_s": [0.0373],
            "migrate_preplugged_s_median": 0.0373, "migrate_live_s": [0.0031],
            "migrate_live_s_median": 0.0031, "migrate_live_lost": [1], "migrate_live_lost_max": 1,
            "flows_per_hv": {"mean": 42, "max": 42, "min": 42},
            "controller_cpu_s": 0.62, "controller_cpu_converge_s": 0.0,
            "foreign_cpu_converge_s": 0.5, "foreign_busiest": ["0.50s busy"],
            "disturbed": disturbed, "controller_rss_mb": 68.1, "controller_peak_rss_mb": 68.1,
            "leaks": 0, "converge_timeline": timeline,
            "cross_tenant": {"probed": 6, "echoes": 30, "of_those_answered_in_own_network": 2,
                             "address_exists_in_own_network": 2}}


def test_convergence_options():
    from benchmarks.convergence import cli

    parser = cli.build_parser()
    args = parser.parse_args(["--hypervisors", "2"])
    assert (args.vms, args.migrations, args.timeout, args.attempts, args.json) == (
        2, 3, 60.0, 1, False)
    assert cli.sizes_of(parser, args) == [2]
    sweep = parser.parse_args(["--sweep"])
    assert cli.sizes_of(parser, sweep) == [2, 4, 8, 16]
    assert parser.prog == "python -m benchmarks.convergence"
    assert parser.description.startswith("Convergence of the DOVE controller")


@pytest.mark.parametrize("argv", [[], ["--sweep", "--hypervisors", "2"], ["--hypervisors", "1"],
                                  ["--hypervisors", "30"], ["--hypervisors", "2", "--vms", "0"],
                                  ["--hypervisors", "2", "--attempts", "0"]])
def test_convergence_bad_options_exit_2(argv, capsys):
    from benchmarks.convergence import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_convergence_not_root_fails_clearly(monkeypatch, capsys):
    from benchmarks.convergence import cli

    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    assert cli.main(["--hypervisors", "2"]) == 2
    assert "needs root" in capsys.readouterr().err


def test_convergence_plan_alternates_tenants_and_overlaps_one_address():
    from benchmarks.convergence import base, vms
    from ryu_dove.policy import load_policy

    policy = load_policy([str(base.POLICY)])
    planned, extra = vms.plan_vms(Lab("cv000001"), policy, ["hv1", "hv2"], 2)
    got = [(v.name, v.state.hypervisor, v.state.network, v.state.ip.rsplit(".", 1)[1])
           for v in planned]
    assert got == [("vm1", "hv1", "acme/web", "10"), ("vm2", "hv1", "globex/web", "10"),
                   ("vm3", "hv2", "acme/web", "11"), ("vm4", "hv2", "globex/web", "13")]
    assert (extra.name, extra.state.network, extra.state.ip.rsplit(".", 1)[1]) == (
        "vmadd", "acme/web", "12")
    assert all(v.state.netns == f"dove-cv000001.{v.name}" for v in [*planned, extra])
    with pytest.raises(vms.BenchError, match="do not fit"):
        vms.plan_vms(Lab("cv000001"), policy, [f"hv{i}" for i in range(29)], 4)


def test_convergence_timeline_reads_the_controller_log(tmp_path):
    import time

    from benchmarks.convergence.timeline import timeline

    wall0 = float(int(time.time()) - 10)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall0))
    log = tmp_path / "controller.log"
    log.write_text(
        f"{stamp},010 DEBUG ryu_dove.engine: endpoint acme/web 02:aa 198.51.100.10 on hv1 "
        "port vif-vm1\n"
        f"{stamp},020 DEBUG ryu_dove.reconciler: hv1: bundle 3 committed: +12 -1 flows in "
        "1.5 ms\n"
        f"{stamp},040 DEBUG ryu_dove.reconciler: hv2: update 4 committed: +3 -0 flows in "
        "0.5 ms\nnot a log line\n")
    tl = timeline(str(log), wall0, 100.0, [100.01, 100.02], [100.3, 100.1, 100.2])
    assert (tl["endpoints_seen"], tl["first_endpoint_s"], tl["bundles"]) == (1, 0.01, 2)
    assert (tl["flows_added"], tl["flows_deleted"], tl["max_bundle_ms"]) == (15, 1, 1.5)
    assert (tl["first_bundle_s"], tl["last_bundle_s"], tl["plug_txn_done_s"]) == (
        0.02, 0.04, 0.02)
    assert (tl["first_reply_s"], tl["median_reply_s"], tl["last_reply_s"]) == (0.1, 0.2, 0.3)
    assert timeline(str(tmp_path / "missing.log"), wall0, 100.0, [], [])["first_reply_s"] is None


def test_convergence_reports():
    from benchmarks.convergence import report

    text = report.render(_convergence_result())
    assert "converge_s        44.7 ms   (OVN 23.03: 39 ms)" in text
    assert "migrate_s         21.0 ms   (OVN: 11-36 ms)" in text
    assert "DISTURBED" not in text
    assert "DISTURBED         other processes used 0.5 s" in report.render(
        _convergence_result(disturbed=True))
    table = report.render_table([_convergence_result(2), _convergence_result(3, True)])
    rows = table.splitlines()
    assert rows[0].split()[:3] == ["H", "VMs", "converge"]
    assert rows[1].split()[:4] == ["2", "4", "44.7ms", "39ms"]
    assert rows[2].split()[3] == "-" and rows[2].endswith("(disturbed)")


def test_convergence_reports_the_routed_phase_against_ovn():
    from benchmarks.convergence import report

    result = {**_convergence_result(), "routed_converge_s": 0.0213,
              "routed_flows_per_hv": {"mean": 78.5, "max": 88, "min": 69}}
    text = report.render(result)
    assert "routed_converge_s 21.3 ms   (OVN 23.03: 56-62 ms)" in text
    assert "routed flows/hv   mean 78.5, max 88   (OVN with ACLs: 1305-1387)" in text
    assert "routed" not in report.render(_convergence_result())


def test_convergence_routed_option():
    from benchmarks.convergence import cli

    args = cli.build_parser().parse_args(["--hypervisors", "2", "--routed"])
    assert args.routed and not cli.build_parser().parse_args(["--sweep"]).routed


# --- benchmarks.scale's world with routing: networks and rules per tenant -----------------------

def test_scale_world_with_rules_is_a_valid_policy_and_places_endpoints_by_network(tmp_path):
    from benchmarks.scale.world import World, binding
    from ryu_dove.policy import load_policy

    world = World(switches=6, endpoints=30, tenants=2, spread=3, networks=3, rules=3)
    path = tmp_path / "world.yaml"
    path.write_text(world.policy_yaml())
    policy = load_policy([str(path)])
    acme = policy.tenants["t0000"]
    assert [str(n.subnet) for n in acme.networks.values()] == [
        "198.51.100.0/26", "198.51.100.64/26", "198.51.100.128/26"]
    assert [(r.src, r.dst, r.proto) for r in acme.rules] == [
        ("net", "net1", "tcp"), ("net1", "net2", "udp"), ("net2", "net", "icmp")]
    vnis = [n.vni for t in policy.tenants.values() for n in t.networks.values()]
    assert len(set(vnis)) == 6
    for g in range(30):  # every endpoint inside its own network's subnet, none the gateway
        ids = dict(binding(world, g).ids)
        net = policy.network(ids["dove-network"])
        assert net is not None and net.host_problem(ids["dove-ips"]) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--rules", "3"], "give --networks 2 or more"),
    (["--networks", "2", "--rules", "3"], "at most 2 one-way pairs"),
    (["--networks", "4", "--endpoints", "20000", "--tenants", "10"], "do not fit 4 network"),
])
def test_scale_refuses_a_world_it_cannot_build(argv, message, capsys):
    from benchmarks.scale import cli

    assert cli.main(["--switches", "10", *argv]) == 2
    assert message in capsys.readouterr().err


def test_engine_alone_runs_a_small_world_with_rules(capsys):
    from benchmarks import engine_alone

    assert engine_alone.main(["--switches", "6", "--tenants", "2", "--spread", "3",
                              "--networks", "3", "--rules", "3", "--events", "4",
                              "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["switches_in_sync"] == 6 and result["rules"] == 3
