"""What every benchmark shares: machine facts, JSON output, lab names and a lab that always
goes down again (also on Ctrl-C or SIGTERM).

Benchmarks drive labs only through `dove_lab.lab.Lab`, like tests and operators do.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dove_lab.lab import Lab
from dove_lab.naming import LAB_NAME
from dove_lab.state import LAB_ROOT, LabState
from dove_lab.topology import Topology
from ryu_dove.policy import Policy

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_POLICY = str(REPO / "policies" / "example.yaml")


class BenchmarkError(RuntimeError):
    """The benchmark cannot run or could not measure; the message says why."""


# --- machine facts ------------------------------------------------------------------------------

def _first_line(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def ovs_version() -> str | None:
    line = _first_line(["ovs-vswitchd", "--version"])  # "ovs-vswitchd (Open vSwitch) 3.1.0"
    match = re.search(r"(\d+\.\d+\.\d+\S*)", line or "")
    return match.group(1) if match else line


def machine_facts() -> dict[str, Any]:
    """What a figure depends on: CPU, cores, kernel, OVS and Python versions."""
    try:
        mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text()
                           .splitlines() if line.startswith("MemTotal:")))
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    return {
        "cpu_model": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 2**20, 1) if mem_kib else None,
        "kernel": platform.release(),
        "os": _os_release(),
        "ovs_version": ovs_version(),
        "python_version": platform.python_version(),
    }


def machine_busy_pct(interval: float = 1.0) -> float:
    """How busy all CPUs are over `interval` seconds (/proc/stat), 0-100."""
    def sample() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(interval)  # the measured interval itself
    total1, idle1 = sample()
    return round(100 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def other_labs(mine: Sequence[str] = ()) -> list[str]:
    """Labs of anyone else that are up now (their state files)."""
    if not LAB_ROOT.exists():
        return []
    return sorted(d.name for d in LAB_ROOT.iterdir()
                  if d.name not in mine and (d / "state.json").exists())


def command_line() -> str:
    """The command as it was typed (interpreter included), for the record."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


# --- output -------------------------------------------------------------------------------------

def print_json(result: dict[str, Any]) -> None:
    """One JSON object on stdout."""
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


# --- labs ---------------------------------------------------------------------------------------

def lab_name(prefix: str) -> str:
    """A fresh lab name `<prefix><random hex>` (8 characters) that no lab uses now."""
    if not re.fullmatch(r"[a-z][a-z0-9]{0,3}", prefix):
        raise ValueError(f"bad lab name prefix {prefix!r}: 1-4 lowercase letters or digits")
    for _ in range(20):
        name = prefix + secrets.token_hex(4)[: 8 - len(prefix)]
        assert LAB_NAME.match(name)
        if not lab_exists(name):
            return name
    raise BenchmarkError(f"no free lab name with prefix {prefix!r}")


def lab_exists(name: str) -> bool:
    """Anything of a lab of that name: its state file or a namespace of it."""
    if LabState.load(name) is not None:
        return True
    prefix = f"dove-{name}."
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=True, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return any(line.split()[0].startswith(prefix) for line in out.splitlines() if line.strip())


_TEARDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def running_lab(prefix: str, topology: Topology, policy_paths: list[str], policy: Policy, *,
                controller: bool = True, controller_args: list[str] | None = None,
                connect_timeout: float = 30.0) -> Iterator[Lab]:
    """A new lab under a fresh name, taken down on leaving, whatever happened.

    Only a lab this call created is ever taken down: the name is fresh (checked unused).
    Ctrl-C, SIGTERM and SIGHUP are ignored during the teardown so that it finishes.
    """
    lab = Lab(lab_name(prefix))
    try:
        lab.up(topology, policy_paths, policy, controller=controller,
               connect_timeout=connect_timeout, controller_args=controller_args)
        yield lab
    finally:
        held = _TEARDOWN_SIGNALS if threading.current_thread() is threading.main_thread() else ()
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in held}
        try:
            lab.down()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so every `finally` (lab teardown) runs."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def require(tools: dict[str, str], root: bool = True) -> None:
    """Fail early, saying what to install: tools maps a command to its Debian package."""
    if root and os.geteuid() != 0:
        raise BenchmarkError("needs root (network namespaces, veths, OVS): run it with sudo")
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        raise BenchmarkError(f"missing tools: apt-get install -y {' '.join(missing)}")


def emit(result: dict[str, Any], as_json: bool, keys: Sequence[str]) -> None:
    """One JSON object, or the headline figures a line each."""
    if as_json:
        print_json(result)
        return
    width = max(len(k) for k in keys) + 2
    for key in keys:
        print(f"  {key:{width}} {result[key]}")
