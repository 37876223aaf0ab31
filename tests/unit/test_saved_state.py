"""The saved state: what is written reads back the same; anything else is refused cleanly."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_dove.engine.saved_state import (
    SAVED_CONN,
    SavedState,
    SavedStateError,
    decode,
    encode,
)
from tests.unit.test_engine import A1, report, tunnel_port

REPORT = report("hv1", A1, tunnel_port("hv2", 9)).report


def record_bytes(last_heard: float = 1_700_000_000.5) -> bytes:
    return encode(REPORT, [A1], last_heard)


def test_a_record_reads_back_as_the_report_of_its_vm_ports() -> None:
    saved = decode(record_bytes())
    assert saved.report == REPORT.__class__(SAVED_CONN, "hv1", REPORT.tep_ip, "netdev", 1,
                                            (A1,))  # its own tunnel ports are not kept
    assert saved.last_heard == 1_700_000_000.5


@pytest.mark.parametrize(("change", "says"), [
    ({"name": "../etc"}, "a hypervisor name is"),
    ({"tep_ip": "224.0.0.1"}, "a TEP is a unicast address"),
    ({"dpid": -1}, "dpid: not a 64-bit datapath id"),
    ({"dpid": True}, "dpid: not a 64-bit datapath id"),
    ({"last_heard": "yesterday"}, "last_heard: not a Unix time"),
    ({"version": 2}, "not a ryu_dove-hypervisor record of version 1"),
    ({"ports": {}}, "ports: a list"),
    ({"ports": [{"name": "p", "ofport": 2**40, "type": "", "external_ids": {},
                 "options": {}, "error": None}]}, "ports[0].ofport"),
    ({"ports": [{"name": "p", "ofport": 1, "type": "", "external_ids": {"k": 1},
                 "options": {}, "error": None}]}, "ports[0].external_ids"),
    ({"ports": [{"name": "p", "ofport": 1, "type": "", "external_ids": {}, "options": {},
                 "error": None}] * 2}, "a port name appears twice"),
])
def test_a_bad_field_is_named(change: dict, says: str) -> None:
    doc = json.loads(record_bytes())
    doc.update(change)
    with pytest.raises(SavedStateError, match=None) as exc:
        decode(json.dumps(doc).encode())
    assert says in str(exc.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    with contextlib.suppress(SavedStateError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(json.loads(record_bytes()))), json_values)
def test_any_field_replaced_by_any_json_is_refused_or_taken_whole(key: str, value) -> None:
    doc = json.loads(record_bytes())
    doc[key] = value
    try:
        saved = decode(json.dumps(doc).encode())
    except SavedStateError:
        return
    assert saved.report.name and saved.report.tep_ip  # whatever was taken is well formed


def test_deeply_nested_json_is_refused() -> None:
    with pytest.raises(SavedStateError):
        decode(b"[" * 100_000 + b"]" * 100_000)


def test_files_are_written_and_read_back_and_a_bad_one_is_set_aside(tmp_path) -> None:
    state = SavedState(tmp_path)
    state.prepare()
    state.put("hv1", record_bytes)
    state.put("hv9", lambda: record_bytes().replace(b'"hv1"', b'"hv9"'))
    state.flush()
    (state.dir / "hv2.json").write_text('{"format": "ryu_dove-hypervisor", "vers')
    (state.dir / "hv3.json").write_bytes(record_bytes())  # holds hv1: planted or copied
    assert [r.report.name for r in state.load()] == ["hv1", "hv9"]
    assert sorted(p.name for p in state.dir.iterdir()) == [
        "hv1.json", "hv2.json.bad", "hv3.json.bad", "hv9.json"]


def test_a_hypervisor_that_left_loses_its_file(tmp_path) -> None:
    state = SavedState(tmp_path)
    state.prepare()
    state.put("hv1", record_bytes)
    state.flush()
    state.put("hv1", None)
    state.flush()
    assert state.load() == []


def test_the_writer_thread_writes_the_latest_record_and_flushes_on_stop(tmp_path) -> None:
    state = SavedState(tmp_path)
    state.prepare()
    state.start()
    state.put("hv1", lambda: record_bytes(1.0))
    state.put("hv1", lambda: record_bytes(2.0))
    state.stop()
    (record,) = state.load()
    assert record.last_heard == 2.0


def test_an_unwritable_directory_is_refused_up_front(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        SavedState(blocker).prepare()
