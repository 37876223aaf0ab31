"""The benchmark's fake switches against os-ken's own encoder and parser.

benchmarks/fake_fleet hand-parses OpenFlow with struct for speed; these tests hold it to
what os-ken sends and expects, so a wrong offset shows up here and not as a silent 0 in a
benchmark figure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3

from benchmarks import fake_fleet
from benchmarks.fake_fleet import fleet as fleet_module
from ryu_dove.pipeline.flows import Output, SetField, flow
from ryu_dove.pipeline.stages import REG_NETWORK, Stage
from tests.fakes import osken_reference as ofencode

DP = ofproto_protocol.ProtocolDesc(version=ofproto_v1_3.OFP_VERSION)
OFP, PARSER = DP.ofproto, DP.ofproto_parser
MAC = "02:00:00:01:00:07"


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        pass


def parse_all(buf: bytes) -> list[Any]:
    msgs, off = [], 0
    while off < len(buf):
        version, mtype, length, xid = ofproto_parser.header(buf[off:])
        msgs.append(ofproto_parser.msg(DP, version, mtype, length, xid, buf[off:off + length]))
        off += length
    return msgs


def wire(*msgs: Any) -> bytes:
    out = bytearray()
    for i, m in enumerate(msgs):
        if m.xid is None:
            m.set_xid(0x8000_0000 + i)
        m.serialize()
        out += m.buf
    return bytes(out)


def connected_switch(tracked: dict[str, int] | None = None) -> tuple[fake_fleet.Fleet, Transport]:
    fleet = fake_fleet.Fleet("127.0.0.1", 0, 1, dpid_base=42)
    fleet.tracker = fake_fleet.Tracker(tracked or {})
    transport = Transport()
    fleet.switches[0].connection_made(transport)
    transport.out.clear()  # our HELLO
    return fleet, transport


def l2_flow_add(mac: str) -> Any:
    f = flow(Stage.IN_L2_LOOKUP, 100, {REG_NETWORK: 5001, "eth_dst": mac},
             [SetField("tunnel_id", 5001), Output(7)])
    return ofencode.flow_add(DP, f)


def test_handshake_replies_parse_as_os_ken_expects():
    fleet, transport = connected_switch()
    sw = fleet.switches[0]
    sw.data_received(wire(PARSER.OFPHello(DP), PARSER.OFPFeaturesRequest(DP),
                          PARSER.OFPPortDescStatsRequest(DP, 0), ofencode.flow_dump(DP),
                          PARSER.OFPEchoRequest(DP, data=b"hi"), PARSER.OFPBarrierRequest(DP)))
    features, ports, flows, echo, barrier = parse_all(bytes(transport.out))
    assert isinstance(features, PARSER.OFPSwitchFeatures) and features.datapath_id == 42
    assert isinstance(ports, PARSER.OFPPortDescStatsReply) and ports.body == []
    assert isinstance(flows, PARSER.OFPFlowStatsReply) and flows.body == [] and flows.flags == 0
    assert isinstance(echo, PARSER.OFPEchoReply) and echo.data == b"hi"
    assert isinstance(barrier, PARSER.OFPBarrierReply)
    assert flows.xid == 0x8000_0003


def test_bundle_is_answered_counted_and_its_tracked_mac_stamped():
    fleet, transport = connected_switch({MAC: 1})
    sw = fleet.switches[0]
    flags = OFP.ONF_BF_ATOMIC | OFP.ONF_BF_ORDERED
    msgs = [ofencode.bundle_ctrl(DP, 7, "OPEN"),
            ofencode.bundle_add(DP, 7, l2_flow_add(MAC)),
            ofencode.bundle_add(DP, 7, l2_flow_add("02:00:00:01:00:08")),
            ofencode.bundle_add(DP, 7, ofencode.flow_delete(DP, 0xD0 << 56)),
            ofencode.bundle_ctrl(DP, 7, "COMMIT")]
    data = wire(*msgs)
    sw.data_received(data[:50])  # split mid-message: the rest completes it
    assert fleet.open_count == 1 and fleet.tracker.remaining == 1
    sw.data_received(data[50:])
    opened, committed = parse_all(bytes(transport.out))
    assert (opened.type, opened.bundle_id, opened.flags) == (OFP.ONF_BCT_OPEN_REPLY, 7, flags)
    assert (committed.type, committed.bundle_id) == (OFP.ONF_BCT_COMMIT_REPLY, 7)
    assert committed.xid == msgs[-1].xid
    assert (sw.adds, sw.deletes, sw.installed, len(sw.commits)) == (2, 1, 1, 1)
    assert fleet.open_count == 0 and fleet.uncommitted == 0
    assert fleet.tracker.remaining == 0 and fleet.tracker.seen == [1]
    t_add, t_commit, seen = fleet.tracker.summary()[MAC]
    assert 0 < t_add <= t_commit and seen == 1


def test_plain_flow_mods_then_a_barrier_count_as_one_committed_update():
    fleet, transport = connected_switch({MAC: 1})
    sw = fleet.switches[0]
    sw.data_received(wire(PARSER.OFPBarrierRequest(DP)))  # nothing before it: no update
    assert sw.commits == []
    sw.data_received(wire(l2_flow_add(MAC), ofencode.flow_delete(DP, 0xD0 << 56),
                          PARSER.OFPBarrierRequest(DP)))
    assert [type(m) for m in parse_all(bytes(transport.out))] == [PARSER.OFPBarrierReply] * 2
    assert (sw.adds, sw.deletes, len(sw.commits)) == (1, 1, 1) and fleet.uncommitted == 0
    t_add, t_commit, seen = fleet.tracker.summary()[MAC]
    assert 0 < t_add <= t_commit and seen == 1


def test_eth_dst_is_read_from_the_match_and_a_masked_one_is_not():
    unicast = wire(l2_flow_add(MAC))
    assert fake_fleet.eth_dst(unicast, 0) == fake_fleet.mac_bytes(MAC)
    flood = flow(Stage.IN_L2_LOOKUP, 100, {REG_NETWORK: 5001,
                                          "eth_dst": ("01:00:00:00:00:00", "01:00:00:00:00:00")})
    assert fake_fleet.eth_dst(wire(ofencode.flow_add(DP, flood)), 0) is None


def test_wait_ends_when_tracked_macs_arrived_and_bundles_are_committed():
    async def scenario() -> dict[str, Any]:
        fleet, _ = connected_switch({MAC: 1})
        sw = fleet.switches[0]
        waiting = asyncio.ensure_future(fleet.wait({"timeout": 5, "all_committed": True}))
        await asyncio.sleep(0)
        sw.data_received(wire(ofencode.bundle_ctrl(DP, 1, "OPEN"),
                              ofencode.bundle_add(DP, 1, l2_flow_add(MAC))))
        await asyncio.sleep(0)
        assert not waiting.done()  # the bundle is still open
        sw.data_received(wire(ofencode.bundle_ctrl(DP, 1, "COMMIT")))
        return await waiting

    answer = asyncio.run(scenario())
    assert answer["done"] and answer["missing_pairs"] == 0 and answer["open_bundles"] == 0


def test_a_connection_the_controller_never_greets_is_dropped_and_retried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a full listen backlog looks like from the switch: connected, then silence."""
    monkeypatch.setattr(fleet_module, "SILENCE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(fleet_module, "FIRST_BACKOFF_S", 0.01)

    async def scenario() -> fake_fleet.SimulatedSwitch:
        accepted: list[asyncio.StreamWriter] = []

        async def controller(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            if len(accepted) > 1:  # silent to the first connection, greets the second
                writer.write(fake_fleet.hello())

        server = await asyncio.start_server(controller, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fleet = fake_fleet.Fleet("127.0.0.1", port, 1, dpid_base=1)
        await fleet.connect({"within": 5})
        await asyncio.wait_for(asyncio.gather(*fleet._connecting), timeout=5)
        fleet.close()
        server.close()
        return fleet.switches[0]

    sw = asyncio.run(scenario())
    assert sw.attempts == 2 and "hello" in sw.times
