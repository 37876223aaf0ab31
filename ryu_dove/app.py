"""The os-ken application: a thin shim between OpenFlow events and the engine.

Load it with `dove-controller` (any os-ken) or with the framework's manager where os-ken
ships one (`osken-manager ryu_dove.app --dove-policy P`, os-ken <= 3.1.x). It builds the
whole controller from configuration: engine, OVSDB manager, REST API.
"""

from __future__ import annotations

import logging
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3

from ovsdb_agent.manager import OvsdbManager
from ryu_dove import oskenhub  # noqa: F401  (makes handler errors logged, not fatal)
from ryu_dove.api import ApiServer
from ryu_dove.directory import MemoryDirectory
from ryu_dove.engine import (
    Engine,
    OvsdbGone,
    OvsdbReport,
    SwitchDown,
    SwitchMessage,
    SwitchUp,
    Timing,
)
from ryu_dove.policy import load_policy

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.MultiStrOpt("policy", default=[], help="policy file or directory (repeatable)"),
    cfg.StrOpt("listen", default="0.0.0.0",
               help="management address for OVSDB and the REST API"),
    cfg.IntOpt("ovsdb-port", default=6640, help="port hypervisors' OVSDB servers connect to"),
    cfg.IntOpt("api-port", default=8080, help="port of the read-only REST API"),
    cfg.FloatOpt("startup-grace", default=1.0,
                 help="seconds to wait after start before changing any switch"),
    cfg.FloatOpt("max-startup-grace", default=30.0,
                 help="give up waiting for silent hypervisors after this many seconds"),
    cfg.FloatOpt("hold-down", default=15.0,
                 help="seconds a hypervisor may be gone before its endpoints are removed"),
]
cfg.CONF.register_cli_opts(OPTS, group="dove")


class DoveController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.CONF.dove
        if not conf.policy:
            raise SystemExit("ryu_dove: no policy given (--dove-policy PATH)")
        self.engine = Engine(load_policy(conf.policy), MemoryDirectory(), self._set_tunnels,
                             Timing(min_grace_s=conf.startup_grace,
                                    max_grace_s=conf.max_startup_grace,
                                    hold_down_s=conf.hold_down))
        host = "::" if conf.listen == "::" else conf.listen
        self.ovsdb = OvsdbManager(f"ptcp:{conf.ovsdb_port}:{_ovs_host(host)}",
                                  on_report=lambda r: self.engine.post(OvsdbReport(r)),
                                  on_disconnect=lambda c: self.engine.post(OvsdbGone(c)))
        self.api = ApiServer(host, conf.api_port, self.engine.snapshot)

    def _set_tunnels(self, hypervisor: str, desired: Any) -> None:
        self.ovsdb.set_tunnels(hypervisor, desired)

    def start(self) -> Any:
        self.ovsdb.start()
        self.api.start()
        self.engine.start()
        LOG.info("DOVE controller up: OVSDB on %s port %d, API %s", self.CONF.dove.listen,
                 self.CONF.dove.ovsdb_port, self.api.url)
        return super().start()

    def close(self) -> None:
        self.api.stop()
        self.ovsdb.stop()
        self.engine.stop()
        super().close()

    # --- OpenFlow events, handed to the engine ---------------------------------------------

    def _send_event(self, ev: Any, state: Any) -> None:
        """Replies the engine takes (one or two per bundle, a bundle per hypervisor per
        endpoint event) are handed over from the switch's receive thread, not through this
        app's event queue and thread: one thread hop (and GIL hand-off) less per message,
        which at 1,000 switches was most of the controller's CPU outside the engine. The
        handlers only post to the engine's thread-safe queue."""
        if type(ev) in _DIRECT_EVENTS:
            for handler in self.get_handlers(ev, state):
                handler(ev)
            return
        super()._send_event(ev, state)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.engine.post(SwitchUp(dp))
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            self.engine.post(SwitchDown(dp))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        self.engine.post(SwitchMessage(ev.msg.datapath.id, "flow_stats", ev.msg))

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, MAIN_DISPATCHER)
    def _bundle_reply(self, ev: Any) -> None:
        self.engine.post(SwitchMessage(ev.msg.datapath.id, "bundle", ev.msg))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        self.engine.post(SwitchMessage(ev.msg.datapath.id, "barrier", ev.msg))

    @set_ev_cls(ofp_event.EventOFPErrorMsg,
                [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        dpid = ev.msg.datapath.id
        if dpid is not None:
            self.engine.post(SwitchMessage(dpid, "error", ev.msg))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        # The pipeline never punts to the controller; count any that arrive anyway.
        self.engine.post(SwitchMessage(ev.msg.datapath.id, "packet_in", ev.msg))


_DIRECT_EVENTS = frozenset({ofp_event.EventOFPFlowStatsReply, ofp_event.EventONFBundleCtrlMsg,
                            ofp_event.EventOFPBarrierReply, ofp_event.EventOFPErrorMsg,
                            ofp_event.EventOFPPacketIn})


def _ovs_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
