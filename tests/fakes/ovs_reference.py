"""OVS as the reference for the fields os-ken has no names for: the ND reserved bits and
option type (Ericsson OXMs, ovs-fields(7)). Our bytes are read back by `ovs-ofctl ofp-print`
and must say what the flow says."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ryu_dove.pipeline.flows import Flow, SetField

OVS_ONLY_FIELDS = frozenset({"nd_reserved", "nd_options_type"})


def ovs_actions(message: bytes) -> str:
    """A flow-mod's actions as OVS reads them (`ovs-ofctl ofp-print`; an action it cannot
    read makes it fail)."""
    if shutil.which("ovs-ofctl") is None:
        pytest.skip("ovs-ofctl (openvswitch-common) is not installed")
    out = subprocess.run(["ovs-ofctl", "ofp-print", message.hex()], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    if "actions=" not in out:
        raise AssertionError(f"OVS could not read the flow-mod:\n{out}")
    return out.split("actions=", 1)[1].split()[0]


def ovs_reads(message: bytes) -> str:
    """What OVS makes of a flow-mod: its set-fields of OVS_ONLY_FIELDS as ovs-ofctl prints
    them."""
    return ",".join(a for a in ovs_actions(message).split(",")
                    if a.startswith("set_field:") and a.split("->")[-1] in OVS_ONLY_FIELDS)


def ovs_text(f: Flow) -> str:
    """The set-field actions of a flow, in ovs-ofctl's words; the other actions are os-ken's
    business (tests/unit/test_wire.py), so only these are compared, in order."""
    return ",".join(f"set_field:{a.value}->{a.field}" for a in f.actions
                    if isinstance(a, SetField) and a.field in OVS_ONLY_FIELDS)
