"""The --no-controller baseline: plain OVS bridging over a full mesh of VXLAN ports.

br-int runs NORMAL (MAC learning) in fail-mode standalone. A full mesh of tunnels would loop
broadcasts, so tunnel ports are excluded from flooding (no-flood) and a broadcast from a local
port is replicated to every tunnel by one explicit flow: split horizon, as in any overlay.
Unknown unicast is not sent over tunnels; ARP learns every MAC first. No isolation at all:
every VM is in one broadcast domain. This is the plain-OVS floor benchmarks compare against.
"""

from __future__ import annotations

from dove_lab.ovs_instance import OvsInstance
from ovsdb_agent import contract

BASELINE_VNI = 0
TUNNEL_PREFIX = "vx-"


def tunnel_port(peer: str) -> str:
    return TUNNEL_PREFIX + peer


def baseline_flows(tunnels: list[str]) -> list[str]:
    """The whole flow table of one hypervisor's br-int in baseline mode."""
    flows = ["priority=0,actions=NORMAL"]
    flows += [f"priority=20,in_port={t},actions=NORMAL" for t in tunnels]
    if tunnels:
        outputs = ",".join(f"output:{t}" for t in tunnels)
        flows.append("priority=10,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,"
                      f"actions=NORMAL,{outputs}")
    return flows


def program_mesh(ovs: OvsInstance, peers: dict[str, str]) -> None:
    """Make this hypervisor's tunnels exactly one per peer (name -> TEP IP), then its flows."""
    br = contract.INTEGRATION_BRIDGE
    want = {tunnel_port(name): ip for name, ip in peers.items()}
    have = [p for p in ovs.vsctl("list-ports", br).split() if p.startswith(TUNNEL_PREFIX)]
    args: list[str] = []
    for port in have:
        if port not in want:
            args += ["--", "del-port", br, port]
    for port, ip in want.items():
        args += ["--", "--may-exist", "add-port", br, port, "--", "set", "interface", port,
                 "type=vxlan", f"options:remote_ip={ip}", f"options:key={BASELINE_VNI}"]
    if args:
        ovs.vsctl(*args[1:])
    target = ovs.bridge_mgmt(br)
    for port in want:  # OFPPC_NO_FLOOD exists in OpenFlow 1.0 only
        ovs.ofctl("mod-port", target, port, "no-flood", version="OpenFlow10")
    flows = "\n".join(baseline_flows(sorted(want))) + "\n"
    flow_file = ovs.root / "baseline.flows"
    flow_file.write_text(flows)
    ovs.ofctl("--bundle", "replace-flows", target, str(flow_file))
