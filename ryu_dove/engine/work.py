"""What a batch of events changed, and bringing exactly those switches up to date.

Handlers mark what they touched: a hypervisor whole (its record changed, its switch
reconnected), a hypervisor's own endpoints in some networks, a network (every hypervisor
hosting it follows), or the tunnel mesh. After the batch, `apply` asks the compiler for
the marked switches only (ryu_dove.pipeline.compiler: each network's part is rebuilt once,
whatever number of hypervisors host it) and hands each result to that switch's reconciler,
and writes every hypervisor's tunnel ports when the mesh changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from ovsdb_agent.reports import TunnelSpec
from ryu_dove.directory import Directory
from ryu_dove.engine.fleet import HypervisorChange
from ryu_dove.openflow.reconciler import Reconciler
from ryu_dove.pipeline.compiler import Compiler
from ryu_dove.pipeline.parts import routing
from ryu_dove.policy import Policy
from ryu_dove.tunnel_ids import tunnel_port_name

TunnelWriter = Callable[[str, Mapping[str, TunnelSpec]], None]


class Work:
    def __init__(self, directory: Directory, write_tunnels: TunnelWriter) -> None:
        self.directory = directory
        self.compiler = Compiler()
        self._write_tunnels = write_tunnels
        # hypervisor -> the networks whose change it must follow; None: recompute it whole
        self._flows: dict[str, set[str] | None] = {}
        self._local: set[str] = set()  # hypervisors whose own endpoints changed
        self._networks: set[str] = set()  # networks whose members changed (routing follows)
        self.tunnels = False  # the mesh changed: every hypervisor's tunnel ports are rewritten

    # --- marking ----------------------------------------------------------------------------

    def whole(self, name: str) -> None:
        self._flows[name] = None

    def own(self, name: str, networks: set[str]) -> None:
        """`name`'s own endpoints changed, in these networks (some it may have just left)."""
        current = self._flows.setdefault(name, set())
        if current is not None:
            current.update(networks)
            self._local.add(name)

    def network(self, net: str) -> None:
        """Every hypervisor hosting `net` follows its change (and, at apply(), every one
        routing into it)."""
        self._networks.add(net)
        for name in self.directory.hosting(net):
            networks = self._flows.setdefault(name, set())
            if networks is not None:
                networks.add(net)

    def everything(self) -> None:
        self._flows = dict.fromkeys(hv.name for hv in self.directory.hypervisors())

    def hypervisor_changed(self, change: HypervisorChange) -> None:
        old, hv = change.old, change.new
        if change.tep_moved:
            self.tunnels = True
        if old == hv:
            return
        self.whole(hv.name)
        if old is not None and old.tep_ip != hv.tep_ip:  # peers name it by its TEP
            for net in self.directory.networks_on(hv.name):
                self.network(net)

    # --- applying ---------------------------------------------------------------------------

    def apply(self, policy: Policy, reconcilers: Mapping[int, Reconciler],
              pump: Callable[[], None], hold: Collection[str] = ()) -> None:
        """Recompute what was marked and hand it on; `pump` serves the switch sockets now
        and then during a long recompute. The switches of hypervisors in `hold` (restored
        after a restart, their own tunnel ports not reported yet) are left as they are."""
        if self.tunnels:
            self.tunnels = False
            self._write_all_tunnels()
        self._follow_routes(policy)
        dirty, self._flows = self._flows, {}
        local, self._local = self._local, set()
        connected, work = {}, {}
        for name in sorted(dirty):
            known = self.directory.hypervisor(name)
            rec = reconcilers.get(known.dpid) if known and known.dpid is not None else None
            if rec is not None and name not in hold:
                connected[name], work[name] = rec, dirty[name]
        for name, flows, changed in self.compiler.switches(policy, self.directory, work, local):
            rec = connected[name]
            rec.name = name
            if rec.desired is not flows.flows:
                rec.set_desired(flows.flows)  # a new connection: diff everything
            elif changed:
                rec.changed(changed)
            pump()

    def _follow_routes(self, policy: Policy) -> None:
        """The hypervisors hosting a network that routes into a changed one follow it too
        (their address lookup of it; ryu_dove.pipeline.parts.routing)."""
        changed, self._networks = self._networks, set()
        for key in changed:
            net = policy.network(key)
            if net is None:
                continue
            for src in routing.routing_into(policy.tenants[net.tenant], key):
                for name in self.directory.hosting(src.key):
                    networks = self._flows.setdefault(name, set())
                    if networks is not None:
                        networks.add(key)

    def forget_unused(self, policy: Policy) -> None:
        """Let the compiler drop parts of networks and hypervisors that are gone."""
        self.compiler.forget((n.key for n in policy.networks()),
                             (hv.name for hv in self.directory.hypervisors()))

    def _write_all_tunnels(self) -> None:
        """Every hypervisor's tunnel ports: one to each other hypervisor, named by its TEP."""
        everyone = {tunnel_port_name(hv.tep_ip): TunnelSpec(hv.tep_ip, hv.name)
                    for hv in self.directory.hypervisors()}
        for hv in self.directory.hypervisors():
            self._write_tunnels(hv.name, {port: spec for port, spec in everyone.items()
                                          if spec.remote != hv.name})
