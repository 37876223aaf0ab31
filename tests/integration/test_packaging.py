"""The package as an operator installs it (issue 14): a wheel built from the source tree,
installed (not editable) into a fresh virtualenv, gives working console scripts and carries
the example policies and the policy schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_JUNK = shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "dist",
                                    "*.egg-info", ".mypy_cache", ".ruff_cache",
                                    ".pytest_cache", ".tox", ".hypothesis")


def run(*argv: str | Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def test_a_wheel_installs_into_a_fresh_venv_with_working_commands(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building must not leave anything in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=BUILD_JUNK)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist",
        source)
    (wheel,) = (tmp_path / "dist").glob("ryu_dove-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    examples = Path(run(venv / "bin" / "dovectl", "examples").strip())
    assert examples.is_relative_to(venv) and not examples.is_symlink()
    assert run(venv / "bin" / "dovectl", "check", examples / "example.yaml").startswith("ok:")
    assert json.loads((examples / "schema.json").read_text())["$schema"]
    assert (examples / "examples" / "libvirt-ports.yaml").is_file()
    for command in ("dove-controller", "dove-lab", "dove-join", "dovectl"):
        assert "usage:" in run(venv / "bin" / command, "--help")
    # The controller's app imports (os-ken, the metrics library) in the installed venv.
    run(venv / "bin" / "python", "-c", "import ryu_dove.app, ryu_dove.northbound.metrics")
