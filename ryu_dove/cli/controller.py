"""dove-controller: run the DOVE controller (an os-ken application) in the foreground.

Checks its inputs before starting anything: a bad policy is reported as file:line:col and
nothing starts; a port already in use is named. SIGHUP reloads the policy (a bad one is
refused and the running one kept); SIGTERM or Ctrl-C stops cleanly. If the engine's thread
dies or stalls, the process exits with status 70 so that its service manager restarts it.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import logging
import logging.handlers
import os
import queue
import signal
import socket
import sys
import threading
from typing import Any

from ovsdb_agent import cli_args, sockets
from ryu_dove.engine.saved_state import DEFAULT_STATE_DIR, SavedState
from ryu_dove.engine.settings import DEFAULT_EXPIRY_S
from ryu_dove.learning.settings import DEFAULT as LEARN
from ryu_dove.learning.settings import MAX_IDLE_S
from ryu_dove.openflow.connection import ECHO_INTERVAL_S
from ryu_dove.policy import check_policy

LOG = logging.getLogger("ryu_dove.controller")
EXIT_ENGINE_FAILED = 70  # EX_SOFTWARE: the engine died or stalled; restart me


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dove-controller", description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, action="append",
                   help="policy file or directory (repeatable)")
    p.add_argument("--listen", type=cli_args.ip_address, default="0.0.0.0",
                   help="management address to listen on (default: all)")
    p.add_argument("--ofp-port", type=cli_args.tcp_port, default=6653, help="OpenFlow port (6653)")
    p.add_argument("--ovsdb-port", type=cli_args.tcp_port, default=6640,
                   help="port the hypervisors' OVSDB servers connect to (6640)")
    p.add_argument("--api-port", type=cli_args.tcp_port, default=8080, help="REST API port (8080)")
    p.add_argument("--startup-grace", type=cli_args.seconds, default=1.0,
                   help="seconds after start before any switch is changed (1)")
    p.add_argument("--expiry", type=cli_args.seconds, default=DEFAULT_EXPIRY_S,
                   help="seconds a hypervisor may go unheard before its endpoints and tunnels "
                        "are removed; 0: never (default a week: docs/availability.md)")
    p.add_argument("--echo-interval", type=cli_args.positive_number, default=ECHO_INTERVAL_S,
                   help="seconds of silence before a switch is probed; after three it is shown "
                        f"unreachable, its flows untouched ({ECHO_INTERVAL_S})")
    p.add_argument("--learn-limit", type=cli_args.whole_in(1, 64), default=LEARN.limit,
                   help="addresses a learning port (no dove-ips) may have learned at once "
                        f"({LEARN.limit}; docs/learning.md)")
    p.add_argument("--learn-expiry", type=cli_args.whole_in(1, MAX_IDLE_S),
                   default=LEARN.idle_s,
                   help=f"seconds a learned address may go unused before it is retired "
                        f"({LEARN.idle_s}; at most {MAX_IDLE_S}, an OpenFlow idle timeout)")
    p.add_argument("--counters-interval", type=cli_args.positive_number, default=15.0,
                   help="seconds between reads of the rule flows' packet counts (the "
                        "per-rule counters of /metrics; 15)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="each hypervisor's last known state, kept across restarts "
                        "(default: %(default)s)")
    p.add_argument("--ssl-key", help="the controller's private key: OpenFlow and OVSDB over "
                   "mutual TLS (docs/security.md)")
    p.add_argument("--ssl-cert", help="the controller's certificate (ovs-pki controllerca)")
    p.add_argument("--ssl-ca", help="the CA hypervisors' certificates must chain to "
                   "(ovs-pki switchca/cacert.pem)")
    p.add_argument("--plaintext", action="store_true",
                   help="no TLS: anyone who reaches the ports can claim to be a hypervisor")
    p.add_argument("--log-file", help="log here instead of stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--debug", action="append", default=[], metavar="MODULE",
                   help="debug logging for one module, e.g. ryu_dove.openflow.reconciler (every "
                        "update a switch committed, with its size and time); repeatable")
    return p


def check_ports(host: str, ports: dict[str, int]) -> list[str]:
    """Bind each port once to say clearly which one is taken, before os-ken hides it."""
    problems = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for what, port in ports.items():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                hint = " (is another controller running?)" if exc.errno == errno.EADDRINUSE \
                    else ""
                problems.append(f"cannot listen for {what} on {host}:{port}: "
                                f"{exc.strerror}{hint}")
    return problems


def _oslo_args(args: argparse.Namespace) -> list[str]:
    argv = ["--ofp-listen-host", args.listen, "--ofp-tcp-listen-port", str(args.ofp_port),
            "--dove-listen", args.listen, "--dove-ovsdb-port", str(args.ovsdb_port),
            "--dove-api-port", str(args.api_port),
            "--dove-startup-grace", str(args.startup_grace),
            "--dove-expiry", str(args.expiry), "--dove-echo-interval", str(args.echo_interval),
            "--dove-state-dir", os.path.abspath(args.state_dir),
            "--dove-learn-limit", str(args.learn_limit),
            "--dove-learn-expiry", str(args.learn_expiry),
            "--dove-counters-interval", str(args.counters_interval)]
    for path in args.policy:
        argv += ["--dove-policy", os.path.abspath(path)]
    for name in ("ssl_key", "ssl_cert", "ssl_ca"):
        if getattr(args, name):
            argv += [f"--dove-{name.replace('_', '-')}", os.path.abspath(getattr(args, name))]
    if args.plaintext:
        argv.append("--dove-plaintext")
    return argv


def _setup_logging(args: argparse.Namespace) -> logging.handlers.QueueListener:
    """Log through a queue: the engine thread formats a record and goes on; a listener thread
    writes it. A slow disk (a flush per line) must not stall the engine."""
    handler: logging.Handler = (logging.FileHandler(args.log_file) if args.log_file
                                else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler)
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued
    root = logging.getLogger()
    root.addHandler(logging.handlers.QueueHandler(records))
    root.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # os-ken logs every connection attempt at INFO
        logging.getLogger("os_ken").setLevel(logging.WARNING)
    for module in args.debug:
        logging.getLogger(module).setLevel(logging.DEBUG)
    return listener


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problems: list[Any] = check_policy(args.policy) + _check_tls(args)
    if not problems:  # checking the state dir creates it: only when all else is right
        problems = _check_state_dir(args.state_dir)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    busy = check_ports(args.listen, {"OpenFlow": args.ofp_port, "OVSDB": args.ovsdb_port,
                                     "the REST API": args.api_port})
    if busy:
        for line in busy:
            print(f"dove-controller: {line}", file=sys.stderr)
        return 1
    _setup_logging(args)
    return _run(args)


def _check_state_dir(path: str) -> list[str]:
    problem = SavedState(path).problem()
    return [] if problem is None else [f"dove-controller: {problem} (--state-dir)"]


def _check_tls(args: argparse.Namespace) -> list[str]:
    """TLS files given all or none, readable and fitting; or --plaintext asked for."""
    try:
        sockets.tls_choice(args.ssl_key, args.ssl_cert, args.ssl_ca, args.plaintext)
    except sockets.TlsChoiceError as exc:
        return [f"dove-controller: {exc}"]
    return []


def start_apps(args: argparse.Namespace, timeout: float | None = None) -> Any:
    """Configure os-ken from our arguments and start ryu_dove.app; returns the AppManager.

    Raises RuntimeError when the app failed to start (or did not within `timeout`).
    """
    # app_manager before anything that imports os_ken.controller: the two import each other.
    # Importing app_manager also registers os-ken's OpenFlow options (--ofp-*).
    from os_ken import cfg
    from os_ken.base import app_manager

    import ryu_dove.app  # noqa: F401  (registers the --dove-* options)

    cfg.CONF(args=_oslo_args(args), project="ryu_dove", prog="dove-controller")
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(["ryu_dove.app"])
    contexts = manager.create_contexts()
    failure: list[BaseException] = []

    def instantiate() -> None:
        try:
            manager.instantiate_apps(**contexts)
        except BaseException as exc:  # re-raised below, in the caller's thread
            failure.append(exc)

    # Started from a daemon thread, every os-ken thread is a daemon: the process can exit.
    starter = threading.Thread(target=instantiate, name="osken-start", daemon=True)
    starter.start()
    starter.join(timeout)
    if failure or starter.is_alive():
        raise RuntimeError(str(failure[0]) if failure else "start-up timed out")
    return manager


def _run(args: argparse.Namespace) -> int:
    from os_ken.base import app_manager

    wake, asked = threading.Event(), set()

    def ask(what: str) -> None:
        asked.add(what)
        wake.set()

    signal.signal(signal.SIGTERM, lambda *_: ask("stop"))
    signal.signal(signal.SIGINT, lambda *_: ask("stop"))
    signal.signal(signal.SIGHUP, lambda *_: ask("reload"))
    try:
        manager = start_apps(args)
    except RuntimeError as exc:
        LOG.error("controller failed to start: %s", exc)
        print(f"dove-controller: failed to start: {exc}", file=sys.stderr)
        return 1
    LOG.info("OpenFlow on %s port %d", args.listen, args.ofp_port)
    status = _watch(args, app_manager, wake, asked)
    LOG.info("stopping")
    manager.close()
    return status


def _watch(args: argparse.Namespace, app_manager: Any, wake: threading.Event,
           asked: set[str]) -> int:
    """The main thread's job until SIGTERM: reload the policy on SIGHUP (here, not in the
    signal handler, so a slow reload never delays SIGTERM), and exit non-zero if the engine
    dies or stalls, so that the service manager restarts the controller (a restart keeps
    every flow: switches are read, never cleared)."""
    while True:
        wake.wait(1.0)
        wake.clear()
        if "stop" in asked:
            return 0
        if "reload" in asked:
            asked.discard("reload")
            _reload(args.policy, app_manager)
        app = app_manager.lookup_service_brick("DoveController")
        problem = app.engine.health() if app is not None else None
        if problem is not None:
            LOG.critical("exiting: %s", problem)
            return EXIT_ENGINE_FAILED


def _reload(paths: list[str], app_manager: Any) -> None:
    from ryu_dove.app import reload_policy

    app = app_manager.lookup_service_brick("DoveController")
    if app is not None:
        reload_policy(paths, app.engine)


if __name__ == "__main__":
    sys.exit(main())
