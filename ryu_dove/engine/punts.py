"""What the engine does with the packets its flows copy to it and the flows OVS retires.

- A learning port's packet (in_port_sec's punts): an address learned (ryu_dove.learning).
- A migration's standby port speaking (in_classify's punt): the move takes effect
  (ryu_dove.engine.moves), the VM's learned addresses go with it, peers are told.
- A learned address's flow idled out (flow-removed): the address is retired.

A part of the engine (Engine inherits it), kept apart so the loop stays about the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ryu_dove.directory import Directory, Endpoint
from ryu_dove.learning import learned
from ryu_dove.learning.learner import Learner
from ryu_dove.openflow.announce import announcement
from ryu_dove.openflow.reconciler import Reconciler
from ryu_dove.openflow.replies import FlowRemoved, PacketIn
from ryu_dove.pipeline.flows import is_ours
from ryu_dove.pipeline.parts.port_security import learned_source
from ryu_dove.pipeline.stages import Stage
from ryu_dove.policy import Policy

if TYPE_CHECKING:
    from ryu_dove.engine.fleet import Fleet
    from ryu_dove.engine.moves import Moves

LearnedWriter = Callable[[str, Mapping[str, str | None]], None]  # OvsdbManager.set_learned
OFPRR_IDLE_TIMEOUT = 0
ANNOUNCE_PORTS = 1000  # output actions per announcement packet-out


class PuntHandling:
    policy: Policy
    directory: Directory
    fleet: Fleet
    learner: Learner
    moves: Moves
    released: bool
    punts: dict[str, int]  # packet-ins by what they were for
    _write_learned: LearnedWriter | None

    def _resolve(self, name: str, depth: int = 0) -> None: ...
    def switch_of(self, name: str) -> Reconciler | None: ...

    def _on_punt(self, dpid: int, msg: PacketIn) -> None:
        """A packet a flow copied: from a learning port's port security, or from a
        migration's standby port (the VM spoke there: its move takes effect)."""
        stage = (msg.cookie >> 48) & 0xFF
        kind = {Stage.IN_CLASSIFY.cookie_id: "activate",
                Stage.IN_PORT_SEC.cookie_id: "learn"}.get(stage, "other")
        if not self.learner.admit(dpid, kind):
            return  # (counted by the learner)
        self.punts[kind if is_ours(msg.cookie) else "other"] += 1
        if msg.in_port is None or not is_ours(msg.cookie):
            return
        name = self.fleet.name_of_dpid(dpid)
        ep = self._endpoint_at(name, msg.in_port) if name is not None else None
        net = self.policy.network(ep.network) if ep is not None else None
        if ep is None or net is None:
            return  # unplugged since, or a late copy
        if stage == Stage.IN_CLASSIFY.cookie_id:
            if ep.standby:
                self._activate(ep)
            return
        if stage != Stage.IN_PORT_SEC.cookie_id:
            return
        value = self.learner.punt(ep, net, self.directory, msg.data)
        if value is not None:
            self._write(ep.hypervisor, ep.port, value)
            self._resolve(ep.hypervisor)

    def _on_flow_removed(self, rec: Reconciler, dpid: int, msg: FlowRemoved) -> None:
        if msg.reason != OFPRR_IDLE_TIMEOUT or not is_ours(msg.cookie):
            return  # the controller's own deletes are known already
        name = self.fleet.name_of_dpid(dpid)
        for ep in self.directory.endpoints_on(name) if name is not None else ():
            for ip in ep.ips if ep.learning else ():
                if learned_source(ep, ip).cookie == msg.cookie:
                    value = self.learner.retire(ep, ip)
                    if value is not None:
                        self._write(ep.hypervisor, ep.port, value)
                        self._resolve(ep.hypervisor)
                    rec.lost(msg.cookie, reinstall=value is None)
                    return
        rec.lost(msg.cookie, reinstall=True)  # not one we let expire: it must stay

    def _activate(self, ep: Endpoint) -> None:
        active = self.directory.by_mac(ep.network, ep.mac)
        if not self.moves.activate(ep, active):
            return
        if active is not None and active.learning and ep.learning and active.ips:
            # The VM's learned addresses move with it: written to its new port at once.
            value = learned.render(zip(active.ips, active.learned_at, strict=True))
            self.learner.carry(ep.hypervisor, ep.port, value)
            self._write(ep.hypervisor, ep.port, value)
        if active is not None and active.hypervisor in self.fleet.reports:
            self._resolve(active.hypervisor)  # the source's port stands by from now on
        self._resolve(ep.hypervisor)

    def _announce(self, ep: Endpoint) -> None:
        """Tell the VMs of the endpoint's network on every hypervisor where it is now."""
        if not self.released:
            return
        frames = [announcement(ep.mac, ip) for ip in ep.ips]
        for name in self.directory.hosting(ep.network) if frames else ():
            rec = self.switch_of(name)
            ports = [e.ofport for e in self.directory.endpoints_on(name)
                     if e.network == ep.network and not e.standby and e.mac != ep.mac]
            if rec is None or not ports:
                continue
            for frame in frames:  # a packet-out's actions length is 16 bits: 4,095 outputs
                for at in range(0, len(ports), ANNOUNCE_PORTS):
                    rec.packet_out(frame, ports[at:at + ANNOUNCE_PORTS])

    def _endpoint_at(self, name: str, ofport: int) -> Endpoint | None:
        return next((e for e in self.directory.endpoints_on(name) if e.ofport == ofport), None)

    def _write(self, hv: str, port: str, value: str | None) -> None:
        if self._write_learned is not None:
            self._write_learned(hv, {port: value})

