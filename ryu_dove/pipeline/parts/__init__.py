"""The flows of the pipeline, as parts that a switch's flow set is the union of.

Pure builders, no state: ryu_dove.pipeline.compiler decides which parts a switch needs and
keeps them between changes. A switch's flows are the union of:
- defaults.DEFAULTS: every stage's table-miss drop, the same everywhere;
- port_security.endpoint_flows(): per local endpoint, its classification and port security;
- per network it hosts, the network's shared part (network.build_part(): ARP answers and a
  unicast flow for every member MAC naming the member's hypervisor in REG_REMOTE), identical
  on every hypervisor hosting the network, as network.specialise() adapts it: its own
  members delivered locally, its flood flows, tunnel ingress from the other hosts only, and
  where ARP requests nobody can answer may go;
- tunnels.to_tunnel(): per remote hypervisor it shares a network with, the OUT_TUNNEL flow
  to the tunnel port.
One module per stage family (classify, port_security, arp, l2, tunnels) holds that family's
flow builders; network.py assembles them into a network's part. Because the shared part
names hypervisors by key instead of by a switch's tunnel ofport, one endpoint's flows are the
same objects (same cookie, same encoded bytes) on every hypervisor. The builders are
memoised, so each distinct flow is built, checked and encoded once.
"""
