"""The systemd unit (etc/dove-controller.service) is one systemd accepts, runs the commands
the package installs, and reloads with SIGHUP (issue 14, "A service and a package")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "etc" / "dove-controller.service"


def test_the_unit_reloads_with_sighup_and_restarts_on_failure() -> None:
    text = UNIT.read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "Restart=on-failure" in text and "StandardError=journal" in text
    commands = [line.split("=", 1)[1].split()[0] for line in text.splitlines()
                if line.startswith(("ExecStart=", "ExecStartPre="))]
    assert {Path(c).name for c in commands} == {"dove-controller", "dovectl"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent  # where this checkout's commands are installed
    unit = tmp_path / "dove-controller.service"
    unit.write_text(UNIT.read_text().replace("/opt/ryu_dove/venv/bin", str(venv_bin)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_sample_config_names_every_option_of_the_app() -> None:
    import re

    import ryu_dove.app as app
    text = (ROOT / "etc" / "ryu_dove.conf").read_text()
    named = set(re.findall(r"^#? ?([a-z_]+) =", text, re.MULTILINE))
    assert {opt.dest for opt in app.OPTS} <= named
