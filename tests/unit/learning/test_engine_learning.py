"""The engine learning from punts: checked like declared addresses, written back to the
hypervisor's OVSDB, published to every switch, retired when unused, muted when abused
(fake switches and clock; policies/example.yaml, acme/web is 198.51.100.0/26)."""

from __future__ import annotations

from collections.abc import Mapping

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory import MemoryDirectory
from ryu_dove.engine.loop import Engine, Timing
from ryu_dove.events import MessageKind, SwitchMessage
from ryu_dove.learning.settings import LearnSettings
from ryu_dove.openflow.replies import FlowRemoved, PacketIn
from ryu_dove.pipeline.parts.port_security import learned_source
from ryu_dove.pipeline.stages import Stage
from tests.unit.learning.frames_build import arp_frame, ipv4_frame
from tests.unit.test_engine import A1, A2, POLICY, Harness, report, tunnel_port

MAC_L = "02:00:00:00:00:0a"
T0 = 1_800_000_000.0


def learning_port(name: str, ofport: int, mac: str, learned: str | None = None) -> PortInfo:
    ids = {contract.IFACE_ID: name, contract.ATTACHED_MAC: mac, contract.NETWORK: "acme/web"}
    if learned is not None:
        ids[contract.LEARNED_IPS] = learned
    return PortInfo(f"vif-{name}", ofport, "", tuple(sorted(ids.items())), (), None)


class LearningHarness(Harness):
    def __init__(self, learn: LearnSettings | None = None) -> None:
        super().__init__()
        self.clock.now = T0
        self.written: list[tuple[str, dict[str, str | None]]] = []
        self.engine = Engine(POLICY, MemoryDirectory(), self._write_tunnels,
                             Timing(min_grace_s=1.0, max_grace_s=30.0),
                             clock=self.clock, wall=self.clock,
                             learn=learn or LearnSettings(), write_learned=self._write)
        self.engine.started_at = self.clock.now

    def _write(self, hv: str, values: Mapping[str, str | None]) -> None:
        self.written.append((hv, dict(values)))

    def punt(self, dpid: int, ofport: int, frame: bytes) -> None:
        cookie = (0xD0 << 56) | (Stage.IN_PORT_SEC.cookie_id << 48) | 1
        sw = self.switches[dpid]
        self.run(SwitchMessage(dpid, MessageKind.PACKET_IN,
                               PacketIn(sw.dp, 0, 1, Stage.IN_PORT_SEC.table, cookie, ofport,
                                        frame)))

    def endpoint(self, hv: str, port: str):
        return next(e for e in self.engine.directory.endpoints_on(hv) if e.port == port)


def up(h: LearningHarness, *hv1_ports: PortInfo) -> None:
    h.run(report("hv1", A1, *hv1_ports, tunnel_port("hv2", 9)),
          report("hv2", A2, tunnel_port("hv1", 9)))
    h.switch_up(1)
    h.switch_up(2)
    h.later(1.0)


def test_an_address_the_vm_uses_is_learned_written_back_and_published() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L))
    assert h.endpoint("hv1", "vif-l1").ips == ()
    h.punt(1, 2, arp_frame(MAC_L, "198.51.100.20", "198.51.100.1"))
    ep = h.endpoint("hv1", "vif-l1")
    assert ep.ips == ("198.51.100.20",) and ep.learned_at == (int(T0) + 1,)
    assert h.written == [("hv1", {"vif-l1": f"198.51.100.20@{int(T0) + 1}"})]
    assert learned_source(ep, "198.51.100.20").cookie in h.switches[1].table
    assert h.engine.directory.by_ip("acme/web", "198.51.100.20") == ep
    # The hypervisor's OVSDB now says it: the manager need not keep writing it.
    value = h.written[0][1]["vif-l1"]
    h.run(report("hv1", A1, learning_port("l1", 2, MAC_L, value), tunnel_port("hv2", 9)))
    assert h.written[-1] == ("hv1", {"vif-l1": None})
    assert h.endpoint("hv1", "vif-l1") == ep


def test_an_address_another_endpoint_holds_is_refused_never_stolen() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L))
    h.punt(1, 2, arp_frame(MAC_L, A2.ids()[contract.IPS], "198.51.100.1"))
    h.punt(1, 2, ipv4_frame(MAC_L, "198.51.100.1", "198.51.100.9"))  # the gateway's
    h.punt(1, 2, ipv4_frame("02:00:00:00:00:0b", "198.51.100.30", "198.51.100.9"))  # not its MAC
    assert h.endpoint("hv1", "vif-l1").ips == () and h.written == []
    assert h.engine.learner.stats.refused == 2
    holder = h.engine.directory.by_ip("acme/web", A2.ids()[contract.IPS])
    assert holder is not None and holder.hypervisor == "hv2"


def test_two_vms_claiming_one_address_leave_it_with_the_first() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L), learning_port("l2", 3, "02:00:00:00:00:0b"))
    h.punt(1, 2, arp_frame(MAC_L, "198.51.100.20", "198.51.100.1"))
    h.punt(1, 3, arp_frame("02:00:00:00:00:0b", "198.51.100.20", "198.51.100.1"))
    assert h.endpoint("hv1", "vif-l1").ips == ("198.51.100.20",)
    assert h.endpoint("hv1", "vif-l2").ips == ()
    # Both values in OVSDB (a race before a restart): the binding keeps the first only.
    h2 = LearningHarness()
    up(h2, learning_port("l1", 2, MAC_L, "198.51.100.20@5"),
       learning_port("l2", 3, "02:00:00:00:00:0b", "198.51.100.20@6"))
    assert [h2.endpoint("hv1", p).ips for p in ("vif-l1", "vif-l2")] == [("198.51.100.20",), ()]


def test_learned_addresses_are_read_back_after_a_restart() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L, "198.51.100.20@1700000000,junk,198.51.100.99@x"))
    ep = h.endpoint("hv1", "vif-l1")
    assert (ep.ips, ep.learned_at, ep.punt) == (("198.51.100.20",), (1_700_000_000,), True)


def test_the_limit_stops_learning_and_the_punts() -> None:
    h = LearningHarness(LearnSettings(limit=2))
    up(h, learning_port("l1", 2, MAC_L))
    for i in range(5):
        h.punt(1, 2, ipv4_frame(MAC_L, f"198.51.100.{20 + i}", "198.51.100.9"))
    ep = h.endpoint("hv1", "vif-l1")
    assert ep.ips == ("198.51.100.20", "198.51.100.21") and not ep.punt
    assert h.engine.learner.stats.refused == 0  # being full is not the VM's fault


def test_a_port_with_refused_claims_is_muted_for_a_while() -> None:
    s = LearnSettings(mute_after=5, mute_window_s=10.0, mute_s=60.0)
    h = LearningHarness(s)
    up(h, learning_port("l1", 2, MAC_L))
    for _ in range(5):
        h.punt(1, 2, ipv4_frame(MAC_L, A2.ids()[contract.IPS], "198.51.100.9"))
    assert not h.endpoint("hv1", "vif-l1").punt  # its punt flows withdrawn
    h.later(61.0)
    assert h.endpoint("hv1", "vif-l1").punt


def test_each_switch_has_a_punt_budget_before_any_parsing() -> None:
    h = LearningHarness(LearnSettings(punts_per_s=10.0, punt_burst=10))
    up(h, learning_port("l1", 2, MAC_L))
    for _ in range(50):
        h.punt(1, 2, b"\x00" * 10)
    assert h.engine.learner.stats.rate_limited == 40


def test_an_address_unused_for_the_idle_time_is_retired() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L, "198.51.100.20@5,198.51.100.21@6"))
    ep = h.endpoint("hv1", "vif-l1")
    cookie = learned_source(ep, "198.51.100.20").cookie
    sw = h.switches[1]
    h.run(SwitchMessage(1, MessageKind.FLOW_REMOVED, FlowRemoved(sw.dp, 0, cookie, 0, 10)))
    assert h.endpoint("hv1", "vif-l1").ips == ("198.51.100.21",)
    assert h.written[-1] == ("hv1", {"vif-l1": "198.51.100.21@6"})
    assert h.engine.directory.by_ip("acme/web", "198.51.100.20") is None


def test_a_flow_the_switch_dropped_that_is_still_wanted_is_put_back() -> None:
    h = LearningHarness()
    up(h)
    sw, rec = h.switches[1], h.engine.reconcilers[1]
    cookie = next(iter(rec.desired))
    del sw.table[cookie]
    h.run(SwitchMessage(1, MessageKind.FLOW_REMOVED, FlowRemoved(sw.dp, 0, cookie, 0, 10)))
    assert cookie in sw.table and rec.in_sync


def test_punts_that_teach_nothing_mute_the_port_too() -> None:
    s = LearnSettings(mute_after=5, mute_window_s=10.0, mute_s=60.0)
    h = LearningHarness(s)
    up(h, learning_port("l1", 2, MAC_L))
    for _ in range(5):  # ARP speaking for another MAC: no claim, no refusal, but noise
        h.punt(1, 2, arp_frame(MAC_L, "198.51.100.30", "198.51.100.1",
                               sha="02:00:00:00:00:0b"))
    assert not h.endpoint("hv1", "vif-l1").punt


def test_a_future_learned_time_that_is_not_a_time_is_skipped() -> None:
    h = LearningHarness()
    up(h, learning_port("l1", 2, MAC_L, "198.51.100.20@99999999999999,198.51.100.21@5"))
    assert h.endpoint("hv1", "vif-l1").ips == ("198.51.100.21",)
    from ryu_dove.northbound import views
    assert views.build(h.engine, "endpoints")["endpoints"]  # the view builds
