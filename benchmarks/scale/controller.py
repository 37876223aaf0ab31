"""The real controller in this process: started as dove-controller starts it, and waited on
through what its engine exposes."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from benchmarks.scale.base import BenchmarkFailed
from ovsdb_agent.sockets import TlsFiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_controller(policy: Path, log_file: Path, ofp_port: int,
                     tls: TlsFiles | None = None) -> Any:
    """Start ryu_dove.app as dove-controller does (over TLS with `tls`, else plaintext);
    return the DoveController instance."""
    from ryu_dove.cli import controller as cli

    security = (["--ssl-key", tls.key, "--ssl-cert", tls.cert, "--ssl-ca", tls.ca]
                if tls is not None else ["--plaintext"])
    args = cli.build_parser().parse_args([
        "--policy", str(policy), "--listen", "127.0.0.1", "--ofp-port", str(ofp_port),
        "--ovsdb-port", str(free_port()), "--api-port", str(free_port()),
        "--startup-grace", "0.5", "--log-file", str(log_file),
        "--state-dir", str(log_file.with_name("controller-state")), *security])
    cli._setup_logging(args)
    try:
        cli.start_apps(args, timeout=60)
    except RuntimeError as exc:
        raise BenchmarkFailed(f"controller did not start: {exc}") from exc
    from os_ken.base import app_manager

    app = app_manager.lookup_service_brick("DoveController")
    if app is None:
        raise BenchmarkFailed("controller did not start: no DoveController app")
    return app


def engine_barrier(engine: Any, timeout: float) -> None:
    """Return once the engine applied everything posted before, its recompute included.

    The engine's one observable, build-nothing event is a packet-in (it only counts it).
    The first sentinel is handled in some batch; a second one posted after that can only be
    in a later batch, which starts after the first batch's recompute.
    """
    from ryu_dove.events import MessageKind, SwitchMessage

    deadline = time.monotonic() + timeout
    for _ in range(2):
        before = engine.packet_ins
        engine.post(SwitchMessage(0, MessageKind.PACKET_IN, None))
        while engine.packet_ins == before:
            if time.monotonic() > deadline:
                raise BenchmarkFailed(f"engine busy for more than {timeout:.0f} s")
            time.sleep(0.005)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"timed out waiting for {what}")
        time.sleep(0.01)
