"""PortSplit (ryu_dove/directory/ports.py): kept across reports, it says what a from-scratch read of
each report says, however ports come, go, change or are rebuilt as new objects."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ovsdb_agent import contract
from ovsdb_agent.reports import PortInfo
from ryu_dove.directory.ports import PortSplit

OWNED = (contract.OWNER, contract.OWNER_VALUE)


def vm(name: str, ofport: int = 1, net: str = "t/net") -> PortInfo:
    return PortInfo(name, ofport, "", ((contract.NETWORK, net),), (), None)


def tunnel(name: str, remote: str, ofport: int | None, owned: bool = True) -> PortInfo:
    ids = tuple(sorted([(contract.REMOTE, remote), *([OWNED] if owned else [])]))
    return PortInfo(name, ofport, "vxlan", ids, (), None)


def from_scratch(ports: list[PortInfo]) -> tuple[list[PortInfo], frozenset[str], dict[str, int]]:
    vms = [p for p in ports if p.ids().get(contract.NETWORK) is not None]
    owned = [p for p in ports if p not in vms and p.ids().get(contract.OWNER)
             == contract.OWNER_VALUE and contract.REMOTE in p.ids()]
    ofports = {p.ids()[contract.REMOTE]: p.ofport for p in sorted(owned, key=lambda p: p.name)
               if p.ofport is not None and p.ofport > 0}
    return (sorted(vms, key=lambda p: p.name),
            frozenset(p.ids()[contract.REMOTE] for p in owned), ofports)


def test_a_report_of_the_same_port_objects_changes_nothing() -> None:
    ports = [tunnel("dv-1", "hv1", 10), vm("vif1")]
    split = PortSplit()
    assert split.update(ports) == (True, True)
    remotes, vms = split.remotes, split.vm_ports
    assert split.update(list(ports)) == (False, False)
    assert split.remotes is remotes and split.vm_ports is vms


def test_a_plugged_vm_does_not_touch_the_tunnels() -> None:
    tunnels = [tunnel(f"dv-{i}", f"hv{i}", 10 + i) for i in range(50)]
    split = PortSplit()
    split.update(tunnels)
    remotes = split.remotes
    assert split.update([*tunnels, vm("vif1")]) == (True, False)
    assert split.remotes is remotes
    assert [p.name for p in split.vm_ports] == ["vif1"]


def test_a_rebuilt_but_equal_tunnel_port_keeps_the_remotes() -> None:
    split = PortSplit()
    split.update([tunnel("dv-1", "hv1", None)])
    remotes = split.remotes
    assert split.update([tunnel("dv-1", "hv1", 7)]) == (False, True)  # numbered now
    assert split.remotes is remotes and split.ofports == {"hv1": 7}


_names = st.sampled_from([f"p{i}" for i in range(8)])
_port = st.one_of(
    st.builds(vm, _names, st.integers(1, 3)),
    st.builds(tunnel, _names, st.sampled_from(["hv1", "hv2", "hv3"]),
              st.one_of(st.none(), st.integers(-1, 3)), st.booleans()),
    st.builds(lambda n: PortInfo(n, 1, "internal", (), (), None), _names),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_port, max_size=6), min_size=1, max_size=8), st.data())
def test_kept_split_equals_a_fresh_read_of_every_report(reports: list[list[PortInfo]],
                                                       data: st.DataObject) -> None:
    split, previous = PortSplit(), []
    for ports in reports:
        unique = list({p.name: p for p in ports}.values())  # OVS names are unique on a bridge
        # the manager reuses the object of a row that did not change
        reused = [next((q for q in previous if q == p), p)
                  if data.draw(st.booleans()) else p for p in unique]
        split.update(reused)
        vms, remotes, ofports = from_scratch(reused)
        assert split.vm_ports == vms
        assert split.remotes == remotes
        assert split.ofports == ofports
        previous = reused
