"""Convergence of the DOVE controller in the one-machine lab: how fast bound VMs can talk.

    python -m benchmarks.convergence --hypervisors H --vms V [--json]
    python -m benchmarks.convergence --sweep [--vms V] [--json]      # H = 2, 4, 8, 16
    python -m benchmarks.convergence --sweep --routed [--json]       # and a routed phase

Runs as root on a machine with Open vSwitch (docs/lab.md). Every figure comes from a fresh
lab (`dove_lab.lab.Lab`, driven only through its public API) that is always taken down
again, on errors and Ctrl-C too. Two tenants of policies/example.yaml, `acme/web` and
`globex/web` (both 198.51.100.0/26), with V VMs per hypervisor, alternating tenants.

Figures
-------
- `converge_s`: from the moment the VM ports are bound until every same-network pair of VMs
  has had its first echo reply; every cross-tenant pair is then checked to be refused (`leaks`).
- `add_vm_s`: one more VM (acme) bound at runtime, until it has a reply from every same-network
  peer and every peer has one from it.
- `migrate_s`: a VM moved to another hypervisor (unplug, then plug with the same MAC and IP),
  from the unplug until a third VM of its network gets a reply from it again (3 moves).
  `migrate_preplugged_s`: 3 more moves with the destination port plugged beforehand (the
  controller refuses it while the old port holds the MAC), timed from the unplug as well.
- `flows_per_hv`: OpenFlow flows on br-int once converged (`ovs-ofctl dump-aggregate`).
- `routed_converge_s` (with `--routed`): a VM bound into acme/db on hv1, from the plug until
  every acme/web VM on the other hypervisors has had an echo reply from it, routed through
  its gateway (the example policy lets web ping db); `routed_flows_per_hv` counts the flows
  then, with routing and the example's rules in place (`benchmarks/convergence/routed.py`).
- `controller_cpu_s`, `controller_rss_mb`: the controller process over the whole run
  (/proc/PID/stat utime+stime since it started; VmRSS at the end and VmHWM, its peak).

How it is measured (decisions)
------------------------------
- Binding: the lab comes up with its hypervisors and the controller but no VM; the benchmark
  waits until the controller reports every hypervisor connected and in sync and the tunnel
  mesh complete (`/v1/tunnels`: H*(H-1) ports, all numbered). The VM namespaces, veths and
  addresses are then made by `dove_lab.nodes.create_vm(..., plug=False)`: the lab's own VMs,
  *without* the final plug. `Lab.add_vm` cannot be used: it plugs in the same step, so its
  namespace set-up would count as convergence. The probes start, t0 is taken, and then every
  hypervisor plugs all of its VM ports in ONE OVSDB transaction (port + the contract's
  `external_ids`, as `VSwitch.plug_vif` does), the hypervisors in parallel.
  These VMs are not recorded in the lab's state.json (that needs Lab internals); they are
  named `dove-<lab>.<vm>` like the lab's own, so `Lab.down()` removes them (it deletes every
  namespace with the lab's prefix; their veths go with them). The benchmark checks after
  `down` that nothing with the lab's prefix is left.
- Reachability: raw ICMP from inside each VM namespace (benchmarks/probe_icmp/): one echo
  per still-unanswered pair every 20 ms; a pair counts at its first reply, and only a reply
  with the pair's ICMP id and one of its sequence numbers, from the destination's IP *and*
  MAC (seen on an AF_PACKET socket, kernel receive timestamps). VMs retransmit ARP every
  20 ms (`net.ipv4.neigh.eth0.retrans_time_ms=20`, `mcast_solicit=10`: a failed entry is
  restarted by the next echo at once, and stops broadcasting 200 ms after the probes stop).
- Addresses: acme VMs get .10, .11, ...; the first globex VM gets .10 too (overlapping
  addresses, allowed between tenants) and the others get addresses that do not exist in acme
  (after the acme range). So a cross-tenant echo is either unanswerable (the address does not
  exist in the sender's network: no reply at all is the only correct outcome) or, for .10,
  answered by the sender's *own-network* VM with that address, which is correct isolation and
  is told apart by the replying MAC; a sender never probes its own address. If the /26 runs out
  (H*V > ~50), every globex VM reuses an acme address.
- Refusal: once converged, every cross-tenant pair gets 5 echoes 20 ms apart and 200 ms more to
  answer (64 pairs at a time; pairs whose address exists in the sender's network must be
  answered from there: the positive control that the window's echoes got through). `leaks`
  counts every reply, in any phase, to one of our echoes whose Ethernet source is a VM of
  another network than the sender's (or no VM at all). It must be 0. Cross-tenant
  pairs are not probed *during* convergence: ARP for addresses that exist nowhere in the
  sender's network is flooded to every hypervisor hosting it, and 50 such broadcasts per
  second per pair would load the userspace switches the benchmark is timing.
- Migration: the moved VM's new incarnation is a new namespace `dove-<lab>.<vm>m<i>` on the
  destination, prepared before t0 with the same MAC, IP, routes and ARP cache (as a live
  migration keeps the guest's memory) and a distinct `net.ipv4.ip_default_ttl`, so its replies
  are told from the old incarnation's (same MAC, same IP). At t0 the old port is unplugged
  (one OVSDB transaction), then the new one is plugged (one more) with the same `iface-id`,
  MAC and IP: ryu_dove refuses a MAC bound elsewhere until the old port is gone
  (docs/controller.md). The observer is a same-network VM on a third hypervisor when there is
  one (H >= 3); with H = 2 it sits on one of the two. Its ARP cache keeps the same MAC.
- Granularity: a path that becomes ready is seen at the next echo or ARP retransmission,
  so every figure carries 0-20 ms of probe quantisation (the same for the OVN bar, measured
  the same way). OVSDB transactions here wait until ovs-vswitchd has applied them, as
  ovs-vsctl and os-vif do; `unplug_txn_s` / `plug_txn_done_s` show that share of a move.
- Where the time goes: the controller's log (`endpoint ... on HV` when the engine has taken
  a port's OVSDB report, `HV: bundle|update N committed` when the engine has handled the
  switch's commit or barrier reply; the controller runs with `--debug=ryu_dove.openflow.reconciler`)
  is read for each phase, next to the plug transactions and the probe timeline
  (`converge_timeline`, `add_vm.timeline`, `migrations[].timeline`), and the CPU seconds of
  the controller, this process (probes, plugging) and the lab's OVS daemons while converging.
- Sharing the machine: the lab, its controller and the probes share the CPUs with whatever
  else runs. CPU used by other processes while converging is recorded
  (`foreign_cpu_converge_s`); above 10% of one CPU the run is marked `disturbed`.
  `--wait-quiet S` waits for idle CPUs and no other lab before each size, and `--attempts N`
  runs a disturbed size again.

Modules: `cli` (options, sizes, printing), `run` (one size: the lab's life and the result),
`scenarios` (converge, refusal, one more VM), `routed` (the routed phase), `migration` (the
moves), `vms` (plan, build, plug), `controller` (its API, waiting), `timeline` (its log),
`machine` (CPU, memory, flows), `report` (text), `context` (what the phases share), `base`.
"""
