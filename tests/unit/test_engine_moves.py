"""Live migration in the engine (fake switches): the destination port stands by, the VM's
first packet there moves it, peers are told, and the source's unplugging settles it."""

from __future__ import annotations

from ryu_dove.events import MessageKind, SwitchMessage
from ryu_dove.learning.frames import claims
from ryu_dove.openflow.replies import PacketIn
from ryu_dove.pipeline.parts.classify import classify_vm
from ryu_dove.pipeline.stages import Stage
from tests.unit.learning.test_engine_learning import LearningHarness, learning_port
from tests.unit.test_engine import report, tunnel_port, vm_port

MAC = "02:00:00:00:00:01"
VM_HV1 = vm_port("m1", 1, MAC, "198.51.100.10")
VM_HV2 = vm_port("m1", 5, MAC, "198.51.100.10")  # the same VM's port on hv2
PEER = vm_port("p3", 1, "02:00:00:00:00:03", "198.51.100.12")


def mesh(*names: str) -> dict[str, list]:
    return {n: [tunnel_port(o, 9 + i) for i, o in enumerate(names) if o != n] for n in names}


def lab(hv1=(VM_HV1,), hv2=(), hv3=(PEER,)) -> LearningHarness:
    h = LearningHarness()
    t = mesh("hv1", "hv2", "hv3")
    h.run(report("hv1", *hv1, *t["hv1"]), report("hv2", *hv2, *t["hv2"]),
          report("hv3", *hv3, *t["hv3"]))
    for dpid in (1, 2, 3):
        h.switch_up(dpid)
    h.later(1.0)
    h.tunnels_ports = t
    return h


def speak(h: LearningHarness, dpid: int, ofport: int, frame: bytes = b"\xff" * 14) -> None:
    """A packet from the VM on that port, as an in_classify flow copied it."""
    sw = h.switches[dpid]
    cookie = (0xD0 << 56) | (Stage.IN_CLASSIFY.cookie_id << 48) | 7
    h.run(SwitchMessage(dpid, MessageKind.PACKET_IN, PacketIn(
        sw.dp, 0, 1, Stage.IN_CLASSIFY.table, cookie, ofport, frame)))


def test_the_destination_port_stands_by_until_the_vm_speaks_there() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    standby = h.endpoint("hv2", "vif-m1")
    assert standby.standby and not h.engine.endpoints.refused
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv1"
    assert classify_vm(standby, 5001).cookie in h.switches[2].table  # copies to the controller
    speak(h, 2, 5)
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv2"
    assert h.endpoint("hv1", "vif-m1").standby
    assert h.engine.moves.active_at == {("acme/web", MAC): ("hv2", "m1")}
    # Peers are told where it is: a gratuitous ARP on hv3's VM port of the network.
    outs = [m for kind, m in h.switches[3].sent if kind == "packet_out"]
    assert outs and outs[-1][0] == (1,)
    assert claims(outs[-1][1])[0].ip == "198.51.100.10"
    # The source's port goes: the move is settled, the VM stays where it is.
    h.run(report("hv1", *h.tunnels_ports["hv1"]))
    assert h.engine.moves.active_at == {}
    assert not h.endpoint("hv2", "vif-m1").standby


def test_a_vm_that_speaks_at_the_source_again_moves_back() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    speak(h, 2, 5)
    speak(h, 1, 1)  # the migration failed and the VM resumed at the source
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv1"
    assert h.endpoint("hv2", "vif-m1").standby


def test_when_the_source_goes_first_the_standby_port_is_bound_as_usual() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    h.run(report("hv1", *h.tunnels_ports["hv1"]))
    assert not h.endpoint("hv2", "vif-m1").standby
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv2"


def test_another_port_with_the_mac_but_not_the_iface_id_is_refused() -> None:
    h = lab()
    other = vm_port("x9", 5, MAC, "198.51.100.10")
    h.run(report("hv2", other, *h.tunnels_ports["hv2"]))
    assert [r.port for r in h.engine.endpoints.refused["hv2"]] == ["vif-x9"]


def test_a_learning_vms_addresses_move_with_it() -> None:
    src = learning_port("m1", 1, MAC, "198.51.100.20@1700000000")
    h = lab(hv1=(src,))
    h.run(report("hv2", learning_port("m1", 5, MAC), *h.tunnels_ports["hv2"]))
    speak(h, 2, 5)
    moved = h.endpoint("hv2", "vif-m1")
    assert (moved.ips, moved.learned_at, moved.standby) == (("198.51.100.20",),
                                                            (1700000000,), False)
    assert ("hv2", {"vif-m1": "198.51.100.20@1700000000"}) in h.written


def test_a_vm_flapping_between_two_ports_is_held_where_it_is() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    for _ in range(3):  # a clone (or a hijacking hypervisor) and the VM keep speaking
        speak(h, 2, 5)
        speak(h, 1, 1)
    assert h.engine.moves.moves == 4 and h.engine.moves.held == 1  # the 5th: held
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv1"
    h.later(61.0)
    speak(h, 2, 5)  # held no more: a real move later is taken
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv2"


def test_during_a_move_a_port_with_the_mac_but_another_iface_id_is_refused() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    speak(h, 2, 5)  # moved to hv2; hv1's port stands by
    thief = vm_port("x9", 4, MAC, "198.51.100.10")
    h.run(report("hv3", PEER, thief, *h.tunnels_ports["hv3"]))
    assert [r.port for r in h.engine.endpoints.refused["hv3"]] == ["vif-x9"]
    speak(h, 3, 4)  # it speaks: nothing moves
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv2"


def test_when_the_destination_port_goes_after_the_move_the_source_port_binds_again() -> None:
    h = lab()
    h.run(report("hv2", VM_HV2, *h.tunnels_ports["hv2"]))
    speak(h, 2, 5)
    assert h.endpoint("hv1", "vif-m1").standby
    h.run(report("hv2", *h.tunnels_ports["hv2"]))  # the VM died at the destination
    assert not h.endpoint("hv1", "vif-m1").standby  # not a black hole for good
    assert h.engine.directory.by_mac("acme/web", MAC).hypervisor == "hv1"
    assert h.engine.moves.active_at == {}
