"""The os-ken application: builds the whole controller from os-ken's configuration.

Load it with `dove-controller` (any os-ken) or with the framework's manager where os-ken
ships one (`osken-manager ryu_dove.app --dove-policy P --dove-ssl-key K --dove-ssl-cert C
--dove-ssl-ca CA`, or `--dove-plaintext`; os-ken <= 3.1.x). It builds the
engine, the OpenFlow listener the engine's thread serves (ryu_dove/openflow/server.py; on
os-ken's --ofp-listen-host and --ofp-tcp-listen-port), the OVSDB manager and the REST API.

ryu_dove does not use os-ken's OpenFlow transport (a receive and a send thread per switch)
and so declares no OpenFlow event handlers, which keeps os-ken from starting its own
listener (ofp_handler) on the same port. docs/controller.md says why.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import controller as _osken_controller  # noqa: F401  (--ofp-* options)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3
from oslo_config import cfg as oslo_cfg

from ovsdb_agent import sockets
from ovsdb_agent.contract import OFP_PORT
from ovsdb_agent.manager import OvsdbManager
from ryu_dove.directory import MemoryDirectory
from ryu_dove.engine.loop import Engine, Timing
from ryu_dove.engine.saved_state import DEFAULT_STATE_DIR, SavedState
from ryu_dove.engine.settings import DEFAULT_EXPIRY_S
from ryu_dove.events import NewPolicy, OvsdbGone, OvsdbReport, PolicyRefused
from ryu_dove.learning.settings import DEFAULT as LEARN
from ryu_dove.learning.settings import MAX_IDLE_S, LearnSettings
from ryu_dove.northbound.api import ApiServer
from ryu_dove.openflow.connection import ECHO_INTERVAL_S
from ryu_dove.openflow.server import OpenFlowServer
from ryu_dove.policy import load_policy
from ryu_dove.policy.yamlmarks import ConfigError

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
    cfg.FloatOpt("expiry", default=DEFAULT_EXPIRY_S,
                 help="seconds a hypervisor may go unheard before its endpoints and tunnels "
                      "are removed (0: never); an outage shorter than this changes nothing"),
    cfg.FloatOpt("echo-interval", default=ECHO_INTERVAL_S,
                 help="seconds of silence before a switch is probed; three of them and it "
                      "is shown unreachable (its flows stay)"),
    cfg.IntOpt("learn-limit", default=LEARN.limit, min=1, max=64,
               help="addresses a learning port (no dove-ips) may have learned at once"),
    cfg.IntOpt("learn-expiry", default=LEARN.idle_s, min=1, max=MAX_IDLE_S,
               help="seconds a learned address may go unused before it is retired"),
    cfg.FloatOpt("counters-interval", default=15.0, min=0.1,
                 help="seconds between reads of the rule flows' packet counts "
                      "(dove_rule_packets_total in /metrics)"),
    cfg.StrOpt("state-dir", default=DEFAULT_STATE_DIR,
               help="where each hypervisor's last known state is kept across restarts"),
    cfg.StrOpt("ssl-key", help="the controller's private key (OpenFlow and OVSDB over TLS)"),
    cfg.StrOpt("ssl-cert", help="the controller's certificate"),
    cfg.StrOpt("ssl-ca", help="the CA hypervisors' certificates must chain to (switchca)"),
    cfg.BoolOpt("plaintext", default=False,
                help="serve OpenFlow and OVSDB over plain TCP: anyone who reaches the "
                     "ports can claim to be a hypervisor"),
]
try:
    cfg.CONF.register_cli_opts(OPTS, group="dove")
except oslo_cfg.ArgsAlreadyParsedError:
    # Loaded by osken-manager (os-ken <= 3.1), which parses its arguments before it imports
    # the apps: the options are then read from --config-file ([dove] section), or given on
    # the command line after `--user-flags <ryu_dove/user_flags.py>` registers them first.
    cfg.CONF.register_opts(OPTS, group="dove")


class DoveController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.CONF.dove
        if not conf.policy:
            raise SystemExit("ryu_dove: no policy given (--dove-policy PATH)")
        if self.CONF.ctl_privkey or self.CONF.ctl_cert or self.CONF.ofp_ssl_listen_port:
            # os-ken's own TLS listener is not used: the same port serves TLS when asked.
            raise SystemExit("ryu_dove: use --dove-ssl-key, --dove-ssl-cert and --dove-ssl-ca "
                             "(not os-ken's --ctl-privkey, --ctl-cert, --ofp-ssl-listen-port)")
        tls = _tls_context(conf)
        host = conf.listen
        self.saved = _saved_state(conf.state_dir)
        # A --config-file may leave os-ken's OpenFlow port unset: the IANA port then.
        self.openflow = OpenFlowServer(self.CONF.ofp_listen_host or "0.0.0.0",
                                       self.CONF.ofp_tcp_listen_port or OFP_PORT, tls=tls,
                                       echo_interval_s=conf.echo_interval)
        self.engine = Engine(load_policy(conf.policy), MemoryDirectory(), self._set_tunnels,
                             Timing(min_grace_s=conf.startup_grace,
                                    max_grace_s=conf.max_startup_grace,
                                    expiry_s=conf.expiry,
                                    counters_s=conf.counters_interval), io=self.openflow,
                             saved=self.saved,
                             learn=LearnSettings(limit=conf.learn_limit,
                                                 idle_s=conf.learn_expiry),
                             write_learned=self._set_learned)
        self.engine.restore(self.saved.load())
        kind = "ptcp" if tls is None else "pssl"
        # OVSDB is probed at twice the interval: python-ovs drops a connection after two
        # unanswered probe intervals, and a lost OVSDB connection changes nothing anyway.
        self.ovsdb = OvsdbManager(f"{kind}:{conf.ovsdb_port}:{_ovs_host(host)}",
                                  on_report=lambda r: self.engine.post(OvsdbReport(r)),
                                  on_disconnect=lambda c: self.engine.post(OvsdbGone(c)),
                                  tls=tls, probe_interval_ms=int(2000 * conf.echo_interval))
        self.api = ApiServer(host, conf.api_port, self.engine.view, self.engine.health)
        self._closed = hub.Event()

    def _set_tunnels(self, hypervisor: str, desired: Any) -> None:
        self.ovsdb.set_tunnels(hypervisor, desired)

    def _set_learned(self, hypervisor: str, values: Any) -> None:
        self.ovsdb.set_learned(hypervisor, values)

    def start(self) -> Any:
        self.saved.start()
        self.ovsdb.start()
        self.api.start()
        self.engine.start()
        LOG.info("DOVE controller up: OpenFlow on %s port %d, OVSDB on %s port %d, API %s",
                 *self.openflow.address, self.CONF.dove.listen, self.CONF.dove.ovsdb_port,
                 self.api.url)
        super().start()
        self._reload_on_sighup()
        # osken-manager (os-ken <= 3.1) runs until the threads apps return have ended; with
        # none it would close the app at once. This one ends when the app is closed.
        return hub.spawn(self._closed.wait)

    def _reload_on_sighup(self) -> None:
        """Under osken-manager nothing else handles SIGHUP: reload the policy on it, as
        dove-controller does (which installs its own handler first, from its main thread)."""
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
            return
        paths = list(self.CONF.dove.policy)
        with contextlib.suppress(ValueError):  # not the main thread: not ours to handle
            signal.signal(signal.SIGHUP,
                          lambda *_: hub.spawn(reload_policy, paths, self.engine))

    def close(self) -> None:
        self._closed.set()
        self.api.stop()
        self.ovsdb.stop()
        self.engine.stop()
        self.saved.stop()
        self.openflow.close()
        super().close()


def reload_policy(paths: list[str], engine: Engine) -> None:
    """Re-read the policy and hand it to the engine; a broken one is refused (every problem
    logged, counted) and the running policy stays."""
    try:
        policy = load_policy(paths)
    except ConfigError as exc:
        for problem in exc.problems:
            LOG.error("policy reload refused, keeping the running policy: %s", problem)
        engine.post(PolicyRefused())
        return
    except Exception:  # a bug in the loader must not take the running controller down
        LOG.exception("policy reload failed, keeping the running policy")
        engine.post(PolicyRefused())
        return
    engine.post(NewPolicy(policy))


def _tls_context(conf: Any) -> ssl.SSLContext | None:
    """Mutual TLS on both control channels, or plain TCP only when asked for by name."""
    try:
        ctx = sockets.tls_choice(conf.ssl_key, conf.ssl_cert, conf.ssl_ca, conf.plaintext,
                                 prefix="--dove-")
    except sockets.TlsChoiceError as exc:
        raise SystemExit(f"ryu_dove: {exc}") from exc
    if ctx is not None:
        return ctx
    LOG.warning("PLAINTEXT: OpenFlow and OVSDB are not authenticated; anyone who reaches "
                "the controller's ports can claim to be any hypervisor (docs/security.md)")
    return None


def _saved_state(path: str) -> SavedState:
    saved = SavedState(path)
    problem = saved.problem()
    if problem is not None:
        raise SystemExit(f"ryu_dove: {problem} (--dove-state-dir)")
    return saved


def _ovs_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
