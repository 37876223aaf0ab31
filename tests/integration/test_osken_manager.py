"""ryu_dove.app under os-ken 3.1's osken-manager, on eventlet (issue 14): a second
virtualenv with os-ken 3.1.0 from PyPI runs the manager against a small real lab, with the
app's options on the command line (--user-flags) and from a --config-file; VMs on two
hypervisors reach each other and the tenants stay apart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dove_lab.probe import ping
from tests.integration.helpers import PAIR, api_get, wait_for, wait_in_sync

ROOT = Path(__file__).resolve().parents[2]
OSKEN_31 = "os-ken==3.1.0"


def run(*argv: str | Path, timeout: float = 900) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """osken-manager of a fresh venv with os-ken 3.1.0 and ryu_dove, installed as an
    operator would."""
    venv = tmp_path_factory.mktemp("osken31") / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(pip, "install", "-q", OSKEN_31, ROOT)  # the package allows os-ken 3.1 and 4
    assert run(venv / "bin" / "python", "-c",
               "import os_ken; print(os_ken.__version__)").strip() == "3.1.0"
    yield venv / "bin" / "osken-manager"


def test_the_manager_runs_a_lab_where_vms_reach_each_other(manager, make_lab, write_topology):
    lab = make_lab(write_topology(PAIR), controller=True, osken_manager=str(manager))
    wait_in_sync(lab)
    assert "osken-manager" in lab.status()["controller"]["command"][0]
    vms = lab.state().vms
    assert ping(vms["a1"], vms["a2"].ip, timeout=5.0)
    extra = lab.add_vm("g1", "hv2", "globex/web", "198.51.100.20")
    wait_for(lambda: any(e["iface_id"] == "g1" for e in api_get(lab, "endpoints")), 10,
             "g1 bound")
    assert not ping(vms["a1"], extra.ip, timeout=1.0)  # another tenant


def reloads(result: str) -> float:
    with urllib.request.urlopen("http://127.0.0.1:28080/metrics", timeout=2) as resp:
        text = resp.read().decode()
    found = re.search(rf'^dove_policy_reloads_total{{result="{result}"}} (\S+)$', text, re.M)
    return float(found[1]) if found else -1.0


def test_the_manager_reads_the_apps_options_from_a_config_file(manager, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text((ROOT / "policies" / "example.yaml").read_text())
    conf = tmp_path / "dove.conf"
    conf.write_text((ROOT / "etc" / "ryu_dove.conf").read_text()
                    .replace("ofp_listen_host = 0.0.0.0", "ofp_listen_host = 127.0.0.1")
                    .replace("policy = /etc/ryu_dove/policy.yaml", f"policy = {policy}")
                    .replace("listen = 0.0.0.0", "listen = 127.0.0.1")
                    .replace("ovsdb_port = 6640", "ovsdb_port = 26640")
                    .replace("api_port = 8080", "api_port = 28080")
                    .replace("state_dir = /var/lib/ryu_dove", f"state_dir = {tmp_path}/state")
                    .replace("plaintext = false", "plaintext = true")
                    .replace("ofp_tcp_listen_port = 6653", "ofp_tcp_listen_port = 26653"))
    proc = subprocess.Popen([str(manager), "--config-file", str(conf), "ryu_dove.app"],
                            env={**os.environ, "OSKEN_HUB_TYPE": "eventlet"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen("http://127.0.0.1:28080/v1/controller",
                                            timeout=2) as resp:
                    return json.load(resp)["policy_sources"] == [str(policy)]
            except OSError:
                return False
        wait_for(answers, 30, "the API of ryu_dove.app under osken-manager")
        # SIGHUP reloads the policy under the manager too: a broken file is refused.
        good = policy.read_text()
        policy.write_text(good + "\n  broken: [\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads("refused") == 1, 10, "the broken policy refused")
        policy.write_text(good)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads("unchanged") == 1, 10, "the same policy reloaded")
        time.sleep(0.5)
        assert proc.poll() is None, "the manager exited"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "DOVE controller up: OpenFlow on 127.0.0.1 port 26653" in out, out[-2000:]
