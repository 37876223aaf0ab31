"""Controller at scale: the real DoveController against a fleet of fake OpenFlow switches.

    python -m benchmarks.scale --switches N --endpoints E --tenants T [--spread S]
        [--networks M --rules R] [--isolated K1] [--events K] [--rate R] [--timeout S]
        [--workdir DIR] [--json]

Why: the targets for 1,000 hypervisors (docs/benchmarks.md, "Controller at scale") are about
the controller alone: how fast the engine, compiler and reconcilers turn bindings into
flow-mods, how long a cold start takes, how much memory it needs. Neither OVS nor a lab can
show that at 1,000 switches on one machine, so the switches are fakes that only answer and
count (benchmarks/fake_fleet.py, one asyncio process), and the controller is the real one.

How:
- The controller runs in this process, started as dove-controller starts it
  (ryu_dove.cli.controller's parser, option mapping, logging and the same AppManager
  sequence), OpenFlow/OVSDB/API on free 127.0.0.1 ports, logging at INFO to a temp file.
  Its CPU is this process's minus the benchmark's main thread (the feeder); its memory is
  this process's peak RSS (VmHWM).
- Bindings are fed as the OVSDB manager feeds them: a full HypervisorReport snapshot of one
  hypervisor per change, with its VM ports (the contract's external_ids) and its owned
  tunnel ports to every other hypervisor, posted with `engine.post(OvsdbReport(...))`.
- The synthetic world: T tenants, each one network (VNIs unique, all on 198.51.100.0/24, a
  documentation range: tenants may overlap); endpoint g belongs to tenant g % T and sits on
  one of the S (`--spread`) hypervisors of that tenant, so a tenant's work touches S
  switches, not N. With `--networks M --rules R` each tenant has M networks splitting the
  /24 and R allow rules between them (tcp 5432, udp 8000-8080, icmp, round the networks:
  routing and stateful rules in the world); endpoint k of a tenant is in its network k % M.

Phases and figures:
1. osken_encode_per_s: os-ken builds and serializes a typical L2 flow-mod (match in_port,
   eth_dst, reg0; set_field tunnel_id, set_field eth_dst, output), before the controller
   starts: the framework's own ceiling on this machine in this run.
2. ingest: the N initial reports (E endpoints) are posted and applied.
3. cold start: all N switches connect at once to the synchronised controller; until every
   switch committed and every endpoint's unicast flow reached every hypervisor hosting its
   tenant. cold_start_s (to the last COMMIT), flowmods_per_s (first flow-mod to last
   COMMIT), flows_per_switch.
4. isolated events: K1 new VM ports, each posted once the previous one is everywhere: the
   latency and the flow-mods of one binding with nothing queued.
5. paced events: K new VM ports at `--rate` per second; p50_ms/p99_ms from the post of a
   binding to the last flow-mod with eth_dst=its MAC on any switch (p99_commit_ms: to the
   COMMIT of that bundle), flowmods_per_event.
6. burst events: K more as fast as they can be posted; events_per_s = K / (last flow-mod -
   first post): the rate the controller keeps up with. The engine takes whatever is queued
   as one batch and recompiles each touched switch once per batch, so how the burst splits
   into batches moves this figure by up to 2x between runs; cpu_ms_per_event says more.
Wall-clock figures move with other load on the machine (loadavg_1m is recorded); cpu_s and
flowmods_per_cpu_s much less.

Modules: `cli` (options, text output), `run` (one run: controller, fleet, phases, result),
`phases` (os-ken's baseline, ingest, cold start, events), `figures` (per phase, headline,
targets), `world` (the synthetic bindings and hypervisor reports), `controller` (started in
this process, waited on), `fleet` (the fake fleet's process and pipe protocol), `meters`
(CPU, garbage collector, memory), `base`.
"""

# Names other benchmarks import from here (benchmarks.engine_alone, benchmarks.ovsdb_reports).
from benchmarks.scale.cli import add_world_options, positive, world_defaults, world_problem
from benchmarks.scale.figures import percentile
from benchmarks.scale.phases import osken_encode_per_s
from benchmarks.scale.world import Hypervisors, World

__all__ = ["Hypervisors", "World", "add_world_options", "osken_encode_per_s", "percentile",
           "positive", "world_defaults", "world_problem"]
