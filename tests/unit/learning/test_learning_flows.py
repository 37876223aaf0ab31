"""A learning port's flows on the fake switch: what it sends goes on as before, what may
teach an address is also copied to the controller through the punt meter, and what is
known or cannot be learned is not (policies/example.yaml; acme/web is 198.51.100.0/26)."""

from __future__ import annotations

from dataclasses import replace

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.compiler import GATEWAY_MAC, compile_switch
from ryu_dove.pipeline.flows import Controller
from ryu_dove.pipeline.parts.common import PUNT_METER
from ryu_dove.pipeline.parts.port_security import learned_source
from ryu_dove.pipeline.stages import Stage
from tests.fakes.br_int import FakeBrInt, arp_request, ipv4
from tests.unit.pipeline.topology import POLICY, WEB2, WEB3, build_directory

IDLE = 300
LEARNER = Endpoint("acme/web", "02:ac:00:00:00:0a", (), "hv1", "tap-l1", 7, "iface-l1",
                   learn_idle_s=IDLE, punt=True)
LEARNED = replace(LEARNER, ips=("198.51.100.20",), learned_at=(1_700_000_000,))


def switch(*eps: Endpoint, meter_pps: int | None = None, clock=None) -> FakeBrInt:
    directory = build_directory([WEB2, WEB3, *eps], hvs=("hv1", "hv2"))
    flows = compile_switch(POLICY, directory, "hv1")
    if meter_pps is None:
        return FakeBrInt(flows, meters={PUNT_METER: 10**9})
    return FakeBrInt(flows, meters={PUNT_METER: meter_pps}, clock=clock or (lambda: 0.0))


def test_a_new_address_is_forwarded_and_copied_to_the_controller() -> None:
    sw = switch(LEARNER)
    fate = sw.send(ipv4(LEARNER.mac, WEB2.mac, "198.51.100.20", WEB2.ips[0]), LEARNER.ofport)
    assert WEB2.ofport in {d.port for d in fate.deliveries}
    (punt,) = fate.punted
    assert punt.metadata["in_port"] == LEARNER.ofport
    fate = sw.send(arp_request(LEARNER.mac, "198.51.100.20", "198.51.100.1"), LEARNER.ofport)
    assert len(fate.punted) == 1
    (answer,) = [d for d in fate.deliveries if d.port == LEARNER.ofport]
    assert answer.packet["arp_sha"] == GATEWAY_MAC  # the responder answered as ever


def test_outside_the_subnet_nothing_is_copied_and_the_gateway_address_is_refused() -> None:
    sw = switch(LEARNER)
    fate = sw.send(ipv4(LEARNER.mac, WEB2.mac, "203.0.113.9", WEB2.ips[0]), LEARNER.ofport)
    assert fate.punted == [] and WEB2.ofport in {d.port for d in fate.deliveries}
    assert sw.process(ipv4(LEARNER.mac, WEB2.mac, "198.51.100.1", WEB2.ips[0]),
                      LEARNER.ofport) == []
    assert sw.process(arp_request(LEARNER.mac, "198.51.100.1", WEB2.ips[0]),
                      LEARNER.ofport) == []


def test_a_learned_address_is_not_copied_and_its_flow_idles_out() -> None:
    sw = switch(LEARNED)
    fate = sw.send(ipv4(LEARNED.mac, WEB2.mac, LEARNED.ips[0], WEB2.ips[0]), LEARNED.ofport)
    assert fate.punted == [] and WEB2.ofport in {d.port for d in fate.deliveries}
    src = learned_source(LEARNED, LEARNED.ips[0])
    assert src in fate.path and src.idle_timeout == IDLE
    other = sw.send(ipv4(LEARNED.mac, WEB2.mac, "198.51.100.21", WEB2.ips[0]), LEARNED.ofport)
    assert len(other.punted) == 1  # still learning: a second address may come


def test_a_learned_address_is_reachable_from_other_hypervisors() -> None:
    directory = build_directory([WEB2, WEB3, LEARNED], hvs=("hv1", "hv2"))
    hv2 = FakeBrInt(compile_switch(POLICY, directory, "hv2"))
    (answer,) = hv2.process(arp_request(WEB3.mac, WEB3.ips[0], LEARNED.ips[0]), WEB3.ofport)
    assert answer.packet["arp_sha"] == LEARNED.mac  # answered on hv2, no flood


def test_a_port_that_stopped_learning_forwards_without_copies() -> None:
    sw = switch(replace(LEARNED, punt=False))
    fate = sw.send(ipv4(LEARNED.mac, WEB2.mac, "198.51.100.21", WEB2.ips[0]), LEARNED.ofport)
    assert fate.punted == [] and WEB2.ofport in {d.port for d in fate.deliveries}
    punts = [f for f in compile_switch(POLICY, build_directory(
        [replace(LEARNED, punt=False)], hvs=("hv1",)), "hv1")
        if any(isinstance(a, Controller) for a in f.actions)]
    assert punts == []


def test_the_meter_caps_copies_not_forwarding() -> None:
    sw = switch(LEARNER, meter_pps=100)
    forwarded = punted = 0
    for i in range(1000):
        fate = sw.send(ipv4(LEARNER.mac, WEB2.mac, f"198.51.100.{2 + i % 60}", WEB2.ips[0]),
                       LEARNER.ofport)
        forwarded += any(d.port == WEB2.ofport for d in fate.deliveries)
        punted += len(fate.punted)
    assert (forwarded, punted) == (1000, 100)


def test_every_punt_names_the_meter_and_a_short_copy() -> None:
    flows = compile_switch(POLICY, build_directory([LEARNER], hvs=("hv1",)), "hv1")
    punts = [a for f in flows for a in f.actions if isinstance(a, Controller)]
    assert punts and all(a.meter_id == PUNT_METER and a.max_len <= 128 for a in punts)
    assert all(f.stage is Stage.IN_PORT_SEC and f.priority > 0 for f in flows
               if any(isinstance(a, Controller) for a in f.actions))
