"""dove-controller refuses bad input before starting anything, and says why."""

from __future__ import annotations

import atexit
import logging
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "policies" / "example.yaml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ryu_dove.cli.controller", *args],
                          capture_output=True, text=True, timeout=60)


def test_bad_policy_is_reported_with_positions_and_nothing_starts():
    bad = str(REPO / "policies" / "invalid" / "many_errors.yaml")
    result = run("--policy", bad, "--listen", "127.0.0.1")
    assert result.returncode == 2
    assert f"{bad}:15:7: network 'acme/web' is missing required key 'vni'" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_named(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run("--policy", EXAMPLE, "--listen", "127.0.0.1", "--api-port", str(port),
                     "--plaintext", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"cannot listen for the REST API on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_dir_it_cannot_write_is_refused_before_anything_starts(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run("--policy", EXAMPLE, "--listen", "127.0.0.1", "--plaintext", "--state-dir",
                 str(blocker))
    assert result.returncode == 2
    assert f"cannot keep state in {blocker}: " in result.stderr and "(--state-dir)" in \
        result.stderr
    assert "Traceback" not in result.stderr


def test_bad_arguments_are_usage_errors():
    result = run("--policy", EXAMPLE, "--listen", "not-an-address")
    assert result.returncode == 2 and "not an IP address: 'not-an-address'" in result.stderr
    result = run("--policy", EXAMPLE, "--ofp-port", "70000")
    assert result.returncode == 2 and "not a TCP port" in result.stderr


def test_the_app_loads_the_way_the_framework_manager_loads_it():
    """osken-manager (os-ken <= 3.1) does load_apps + create_contexts; 4.x has no manager."""
    code = ("import ryu_dove; from os_ken.base import app_manager; "
            "m = app_manager.AppManager.get_instance(); m.load_apps(['ryu_dove.app']); "
            "m.create_contexts(); print(sorted(m.applications_cls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    # only ryu_dove: os-ken's own OpenFlow listener (ofp_handler) would take the same port
    assert out.stdout.strip() == "['ryu_dove.app']"


def test_os_kens_own_tls_options_point_at_ours():
    code = ("import ryu_dove; from os_ken import cfg; from os_ken.base import app_manager; "
            "import ryu_dove.app; "
            f"cfg.CONF(args=['--ctl-privkey', 'k.pem', '--ctl-cert', 'c.pem', '--dove-policy', "
            f"{EXAMPLE!r}], project='t'); m = app_manager.AppManager.get_instance(); "
            "m.load_apps(['ryu_dove.app']); m.instantiate_apps(**m.create_contexts())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "use --dove-ssl-key, --dove-ssl-cert and --dove-ssl-ca" in out.stderr


def test_without_certificates_or_plaintext_nothing_starts():
    result = run("--policy", EXAMPLE, "--listen", "127.0.0.1")
    assert result.returncode == 2
    assert "give --ssl-key, --ssl-cert and --ssl-ca (certificates from ovs-pki), or " \
           "--plaintext" in result.stderr


def test_half_the_tls_files_or_unreadable_ones_are_refused(tmp_path):
    result = run("--policy", EXAMPLE, "--ssl-key", "k.pem")
    assert result.returncode == 2 and "TLS needs all of --ssl-key" in result.stderr
    missing = str(tmp_path / "nope.pem")
    result = run("--policy", EXAMPLE, "--ssl-key", missing, "--ssl-cert", missing,
                 "--ssl-ca", missing)
    assert result.returncode == 2 and "cannot use the TLS files" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_names_one_module(tmp_path, monkeypatch):
    from ryu_dove.cli import controller as cli

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # _setup_logging adds its queue handler here
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(logging.getLogger("ryu_dove.openflow.reconciler"), "level", logging.NOTSET)
    args = cli.build_parser().parse_args(["--policy", "p.yaml", "--log-file",
                                          str(tmp_path / "c.log"),
                                          "--debug=ryu_dove.openflow.reconciler"])
    listener = cli._setup_logging(args)
    try:
        reconciler = logging.getLogger("ryu_dove.openflow.reconciler")
        assert reconciler.getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("ryu_dove.engine.loop").getEffectiveLevel() == logging.INFO
    finally:
        listener.stop()
        atexit.unregister(listener.stop)


def test_the_watchdog_exits_70_when_the_engine_fails(monkeypatch) -> None:
    from ryu_dove.cli import controller as cli

    class App:
        class engine:  # noqa: N801 - stands in for the controller's engine
            @staticmethod
            def health() -> str | None:
                return "the engine's thread has stopped"

    class Manager:
        @staticmethod
        def lookup_service_brick(name: str) -> object:
            return App()

    import threading
    status = cli._watch(cli.build_parser().parse_args(["--policy", "p"]), Manager(),
                        threading.Event(), set())
    assert status == cli.EXIT_ENGINE_FAILED == 70


def test_the_watchdog_reloads_on_request_and_stops_on_request(monkeypatch) -> None:
    import threading

    from ryu_dove.cli import controller as cli

    reloads: list[list[str]] = []
    monkeypatch.setattr(cli, "_reload", lambda paths, manager: reloads.append(paths))
    wake, asked = threading.Event(), {"reload"}

    class Manager:
        @staticmethod
        def lookup_service_brick(name: str) -> None:
            asked.add("stop")  # the next round stops
            wake.set()
            return None

    assert cli._watch(cli.build_parser().parse_args(["--policy", "p"]), Manager(), wake,
                      asked) == 0
    assert reloads == [["p"]]
