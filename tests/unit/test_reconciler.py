"""The reconciler against a fake switch: only differences are sent, in one bundle."""

from __future__ import annotations

import itertools

from ryu_dove.events import MessageKind
from ryu_dove.openflow.reconciler import SMALL_UPDATE, Phase, Reconciler
from ryu_dove.pipeline.flows import Flow, Output, SetField, flow
from ryu_dove.pipeline.stages import Stage
from tests.fakes.of_channel import FakeChannel


def flows(n: int, vni: int = 5001):
    return frozenset(flow(Stage.IN_L2_LOOKUP, 100,
                          {"reg0": vni, "eth_dst": f"02:00:00:00:00:{i:02x}"}, [Output(i + 1)])
                     for i in range(n))


def pump(rec: Reconciler, sw: FakeChannel) -> None:
    """Deliver the switch's answers until it has nothing more to say."""
    while sw.replies:
        for kind, msg in sw.take_replies():
            {MessageKind.FLOW_STATS: rec.on_flow_stats, MessageKind.BUNDLE: rec.on_bundle_reply,
             MessageKind.BARRIER: rec.on_barrier_reply, MessageKind.ERROR: rec.on_error}[kind](msg)


def connected(sw: FakeChannel) -> Reconciler:
    rec = Reconciler("hv1", sw.dp)
    rec.start()
    pump(rec, sw)
    assert rec.phase is Phase.IDLE
    return rec


def test_empty_switch_gets_the_desired_flows_in_one_bundle():
    sw = FakeChannel()
    rec = connected(sw)
    rec.set_desired(flows(5))
    pump(rec, sw)
    assert set(sw.table) == {f.cookie for f in flows(5)}
    assert rec.in_sync and rec.stats.bundles == 1 and len(sw.flow_mods_sent()) == 5


def test_same_desired_state_sends_nothing():
    sw = FakeChannel()
    rec = connected(sw)
    rec.set_desired(flows(5))
    pump(rec, sw)
    sent = len(sw.sent)
    rec.set_desired(flows(5))
    pump(rec, sw)
    assert len(sw.sent) == sent


def test_a_changed_flow_is_replaced_in_place_then_its_old_cookie_deleted():
    sw = FakeChannel()
    rec = connected(sw)
    rec.set_desired(flows(5))
    pump(rec, sw)
    changed = set(flows(4)) | {flow(Stage.IN_L2_LOOKUP, 100, {"reg0": 5001,
                                                              "eth_dst": "02:00:00:00:00:04"},
                                    [SetField("tunnel_id", 5001), Output(9)])}
    before = len(sw.flow_mods_sent())
    rec.set_desired(frozenset(changed))
    pump(rec, sw)
    mods = sw.flow_mods_sent()[before:]
    # Small and after the first sync: plain flow-mods, add first. The add has the old flow's
    # match and priority, so the switch replaces it in place (no moment without the flow);
    # the delete by the old cookie then finds nothing.
    assert [m.command for m in mods] == [sw.ofp.OFPFC_ADD, sw.ofp.OFPFC_DELETE]
    assert sw.sent[-1][0] == "barrier" and rec.stats.plain_updates == 1
    assert set(sw.table) == {f.cookie for f in changed} and rec.in_sync


def test_reconnect_reads_the_switch_and_sends_only_the_difference():
    sw = FakeChannel()
    rec = connected(sw)
    rec.set_desired(flows(50))
    pump(rec, sw)
    sw.add_foreign_flow()
    sw.sent.clear()
    rec2 = connected(sw)  # the controller restarted: a new reconciler, same switch
    rec2.set_desired(flows(50))
    pump(rec2, sw)
    assert sw.flow_mods_sent() == []  # nothing flushed, nothing re-added
    assert rec2.foreign == 1 and 0x1234 in sw.table  # foreign flows are left alone
    rec2.set_desired(flows(48))
    pump(rec2, sw)
    assert len(sw.flow_mods_sent()) == 2 and 0x1234 in sw.table


def test_held_reconciler_changes_nothing_until_released():
    sw = FakeChannel()
    rec = Reconciler("hv1", sw.dp)
    rec.hold = True
    rec.start()
    pump(rec, sw)
    rec.set_desired(flows(3))
    pump(rec, sw)
    assert sw.table == {}
    rec.release()
    pump(rec, sw)
    assert rec.in_sync


def test_refused_flow_triggers_a_resync_that_converges():
    sw = FakeChannel()
    rec = connected(sw)
    bad = next(iter(flows(3)))
    sw.refuse_cookies.add(bad.cookie)
    rec.set_desired(flows(3))
    pump(rec, sw)
    assert rec.stats.errors == 1 and rec.stats.resyncs == 1  # refused once, not retried
    assert bad.cookie not in sw.table and len(sw.table) == 2  # the others did go in
    assert rec.rejected == {bad.cookie} and not rec.in_sync  # and it says so
    rec.set_desired(flows(3) - {bad})
    pump(rec, sw)
    assert rec.in_sync and rec.rejected == set()


def test_a_refused_flow_is_named_right_when_the_xids_wrap():
    sw = FakeChannel()
    rec = connected(sw)
    rec._xids = itertools.count(0xFFFF_FFFE)  # OPEN gets 0xfffffffe, the flows 0xffffffff, 0..
    wanted = sorted(flows(4), key=lambda f: f.cookie)
    bad = wanted[2]  # sent with xid 1, after the wrap
    sw.refuse_cookies.add(bad.cookie)
    rec.set_desired(frozenset(wanted))
    pump(rec, sw)
    assert rec.rejected == {bad.cookie} and len(sw.table) == 3


# --- a live desired mapping with changes reported by cookie ---------------------------------

def synced(n: int) -> tuple[FakeChannel, Reconciler, dict[int, Flow]]:
    """A switch holding flows(n), and its reconciler given them as a live mapping."""
    sw = FakeChannel()
    rec = connected(sw)
    live = {f.cookie: f for f in flows(n)}
    rec.set_desired(live)
    pump(rec, sw)
    return sw, rec, live


def test_reported_changes_send_exactly_the_change():
    sw, rec, live = synced(50)
    gone = next(iter(live))
    new = flow(Stage.IN_L2_LOOKUP, 100, {"reg0": 7, "eth_dst": "02:00:00:00:01:00"}, [Output(3)])
    del live[gone]
    live[new.cookie] = new
    before = len(sw.flow_mods_sent())
    rec.changed({gone, new.cookie})
    pump(rec, sw)
    assert len(sw.flow_mods_sent()) - before == 2
    assert set(sw.table) == set(live) and rec.in_sync


def test_changes_reported_while_a_bundle_is_in_flight_follow_it():
    sw = FakeChannel()
    rec = connected(sw)
    live = {f.cookie: f for f in flows(5)}
    rec.set_desired(live)  # bundle 1 on its way, not answered yet
    extra = flows(8) - flows(5)
    live.update({f.cookie: f for f in extra})
    first = next(iter(flows(5)))
    del live[first.cookie]
    rec.changed({*(f.cookie for f in extra), first.cookie})
    pump(rec, sw)
    assert set(sw.table) == set(live) and rec.in_sync
    assert (rec.stats.bundles, rec.stats.plain_updates) == (1, 1)


def test_a_change_to_a_flow_not_installed_yet_is_not_deleted():
    sw, rec, live = synced(3)
    rec.changed({12345})  # neither desired nor installed: nothing to do
    pump(rec, sw)
    assert rec.stats.bundles == 1 and rec.in_sync


# --- bundles for the first sync and large differences, flow-mods + barrier for small ones ---

def test_first_sync_is_a_bundle_and_small_changes_after_it_are_not():
    sw, rec, live = synced(3)
    assert [k for k, _ in sw.sent if k not in ("dump", "meter_mod")][:1] == ["bundle_ctrl"]
    extra = next(iter(flows(4) - flows(3)))
    live[extra.cookie] = extra
    sent = len(sw.sent)
    rec.changed({extra.cookie})
    pump(rec, sw)
    assert [k for k, _ in sw.sent[sent:]] == ["flow_mod", "barrier"]
    assert rec.in_sync and extra.cookie in sw.table


def test_a_large_difference_after_the_first_sync_is_still_one_bundle():
    sw = FakeChannel()
    rec = connected(sw)
    rec.set_desired(flows(3))
    pump(rec, sw)
    big = flows(3) | flows(SMALL_UPDATE + 1, vni=9)  # one flow-mod more than "small"
    sent = len(sw.sent)
    rec.set_desired(big)
    pump(rec, sw)
    kinds = [k for k, _ in sw.sent[sent:]]
    assert kinds[0] == "bundle_ctrl" and "flow_mod" not in kinds
    assert rec.in_sync and set(sw.table) == {f.cookie for f in big}


def test_a_refused_flow_in_a_small_update_is_reported_and_the_switch_read_again():
    sw, rec, live = synced(3)
    bad, good = sorted(flows(5) - flows(3), key=lambda f: f.cookie)
    sw.refuse_cookies.add(bad.cookie)
    live.update({bad.cookie: bad, good.cookie: good})
    rec.changed({bad.cookie, good.cookie})
    pump(rec, sw)
    assert rec.rejected == {bad.cookie} and rec.stats.resyncs == 1
    assert good.cookie in sw.table and bad.cookie not in sw.table  # the rest went in


# --- the meters punts go through (docs/research/punts-ovs-3.1.md) -----------------------------

def test_a_switch_gets_the_punt_meters_before_its_flows_are_read() -> None:
    from ryu_dove.openflow.reconciler import METERS

    sw = FakeChannel()
    rec = connected(sw)
    kinds = [k for k, _ in sw.sent]
    assert kinds[:len(METERS) + 1] == ["meter_mod"] * len(METERS) + ["dump"]
    assert sw.meters == dict(METERS) and not rec.meters_failed


def test_meters_the_switch_has_already_are_modified_never_deleted() -> None:
    """A restarted controller: the switch kept its meters (and punt flows bound to them)."""
    from ryu_dove.openflow import messages
    from ryu_dove.openflow.reconciler import METERS

    sw = FakeChannel(meters={meter_id: (1, 1) for meter_id in METERS})
    rec = connected(sw)
    pump(rec, sw)
    commands = [cmd for kind, (cmd, _) in (m for m in sw.sent if m[0] == "meter_mod")]
    assert commands == [messages.OFPMC_ADD] * len(METERS) + [messages.OFPMC_MODIFY] * len(METERS)
    assert sw.meters == dict(METERS) and not rec.meters_failed


def test_a_switch_that_takes_no_meter_is_noted_and_its_flows_still_go_in() -> None:
    from ryu_dove.openflow.reconciler import METERS

    sw = FakeChannel(refuse_meters=True)
    rec = connected(sw)
    rec.set_desired(flows(3))
    pump(rec, sw)
    assert rec.meters_failed == set(METERS) and rec.in_sync
