"""The command line: `python -m benchmarks.dataplane`, its options, and what it prints (the
human summary, or JSON with --json)."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from collections.abc import Callable

from benchmarks.common import EXAMPLE_POLICY, BenchmarkError, exit_on_signals, print_json
from benchmarks.dataplane.base import MAX_CONNECTIONS, NETWORK, QUIET_BUSY_PCT
from benchmarks.dataplane.report import human
from benchmarks.dataplane.run import run
from dove_lab.lab import LabError
from dove_lab.shell import CommandFailed
from ryu_dove.policy.yamlmarks import ConfigError


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"not a whole number from {low} to {high}: {text!r}")
        return value
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dataplane",
        description="TCP throughput, ping latency, megaflows and packet-ins VM to VM across two "
                    "hypervisors: the DOVE pipeline against the plain-OVS baseline, same run.")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the human summary")
    parser.add_argument("--seconds", type=_positive_float, default=10.0,
                        help="length of each iperf3 run (default 10)")
    parser.add_argument("--connections", type=_int_in(1, MAX_CONNECTIONS), default=100,
                        help="concurrent TCP connections for the megaflow count (default 100)")
    parser.add_argument("--rounds", type=_int_in(1, 20), default=3,
                        help="throughput/latency rounds per lab, alternating order; medians are "
                             "reported (default 3)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for a quiet machine (no other lab up, CPUs "
                             f"under {QUIET_BUSY_PCT:g}%% busy) before measuring (default 0: "
                             "measure at once, warn if not quiet)")
    parser.add_argument("--policy", default=EXAMPLE_POLICY,
                        help=f"policy file with {NETWORK} (default policies/example.yaml)")
    parser.add_argument("--mode", choices=["l2", "routed"], default="l2",
                        help="l2: vm1 -> vm2 in acme/web; routed: vm1 (acme/web) -> vm3 "
                             "(acme/db) routed through an allow rule and conntrack, with the "
                             "L2 path of the same lab measured too (default l2)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="leave ovs-vswitchd wherever the scheduler puts it (by default "
                             "each hypervisor's runs on a core of its own, as on separate "
                             "hosts: benchmarks/dataplane/pinning.py)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run(args, progress)
    except (BenchmarkError, LabError, ConfigError, CommandFailed,
            subprocess.SubprocessError) as exc:
        print(f"benchmarks.dataplane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmarks.dataplane: interrupted; the labs were taken down", file=sys.stderr)
        return 130
    except SystemExit as exc:  # SIGTERM/SIGHUP (exit_on_signals): the labs are down already
        if isinstance(exc.code, int) and exc.code > 128:
            print(f"benchmarks.dataplane: stopped by signal {exc.code - 128}; the labs were "
                  "taken down", file=sys.stderr)
        raise
    if args.json:
        print_json(result)
    else:
        print(human(result))
    return 0
