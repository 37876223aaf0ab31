"""The command line: `python -m benchmarks.convergence`, its options, the sizes it runs, and
what it prints (a summary, or JSON with --json)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import benchmarks.convergence as package
from benchmarks.convergence.base import BenchError, say
from benchmarks.convergence.machine import machine_facts, wait_for_quiet
from benchmarks.convergence.report import render, render_machine, render_table
from benchmarks.convergence.run import Run
from benchmarks.probe_icmp import ProbeError
from dove_lab import shell
from dove_lab.lab import LabError

SWEEP = (2, 4, 8, 16)
MIGRATIONS = 3


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.convergence",
                                description=(package.__doc__ or "").splitlines()[0])
    p.add_argument("--hypervisors", type=int, help="hypervisors in the lab (2-29)")
    p.add_argument("--vms", type=int, default=2, help="VMs per hypervisor (default 2)")
    p.add_argument("--sweep", action="store_true",
                   help=f"run H = {', '.join(map(str, SWEEP))} (one lab each)")
    p.add_argument("--migrations", type=int, default=MIGRATIONS,
                   help=f"moves of one VM between two hypervisors (default {MIGRATIONS})")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for reachability in each phase (default 60)")
    p.add_argument("--keep-logs", type=Path, metavar="DIR",
                   help="copy each lab's controller log into DIR before taking it down")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each lab, wait up to S seconds until no other lab is up and "
                        "the CPUs are idle (default: only note how busy they are)")
    p.add_argument("--attempts", type=int, default=1, metavar="N",
                   help="run a size again (up to N times in all) when other processes used "
                        "the CPUs while it converged (default 1: report it as disturbed)")
    p.add_argument("--routed", action="store_true",
                   help="also bind a VM into acme/db and time until web VMs on the other "
                        "hypervisors get routed replies; flows counted with routing on")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    return p


def sizes_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The numbers of hypervisors to run; exits through the parser on bad options."""
    if args.sweep == (args.hypervisors is not None):
        parser.error("give either --hypervisors H or --sweep")
    sizes = list(SWEEP) if args.sweep else [args.hypervisors]
    if any(not 2 <= h <= 29 for h in sizes) or args.vms < 1 or args.migrations < 1 \
            or args.attempts < 1:
        parser.error("need 2 <= --hypervisors <= 29, --vms >= 1, --migrations >= 1 and "
                     "--attempts >= 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = sizes_of(parser, args)
    if os.geteuid() != 0:
        print("convergence: needs root (the lab builds namespaces and runs OVS)",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # the lab goes down on SIGTERM too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    command = " ".join(shlex.quote(a) for a in
                       ["python", "-m", "benchmarks.convergence", *(sys.argv[1:]
                                                                    if argv is None else argv)])
    facts = machine_facts()
    results: list[dict[str, Any]] = []
    try:
        for h in sizes:
            results.append(measure_size(h, args, {"machine": facts, "command": command}))
    except KeyboardInterrupt:
        say("interrupted; the lab was taken down")
        return 130
    except (BenchError, LabError, ProbeError, shell.CommandFailed, OSError) as exc:
        say(f"FAILED: {exc}")
        if results and not args.json:
            print(render_table(results))
        return 1
    return print_results(results, args, facts)


def measure_size(h: int, args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    """One size, run again (up to --attempts in all) while other processes disturb it."""
    for attempt in range(1, args.attempts + 1):
        busy = wait_for_quiet(args.wait_quiet)
        run = Run(h, args.vms, args.migrations, args.timeout, args.keep_logs, args.routed)
        result = {**run.execute(), "cpu_busy_pct_before": busy, "attempt": attempt, **record}
        if not result["disturbed"] or attempt == args.attempts:
            break
        say(f"H={h}: other processes used {result['foreign_cpu_converge_s']} s CPU "
            f"while converging ({'; '.join(result['foreign_busiest'])}): again")
    return result


def print_results(results: list[dict[str, Any]], args: argparse.Namespace,
                  facts: dict[str, Any]) -> int:
    """Print the results; 1 when another tenant's VM answered (isolation broken)."""
    leaky = [r["hypervisors"] for r in results if r["leaks"]]
    if args.json:
        out: Any = results if args.sweep else results[0]
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(render(r))
        if args.sweep:
            print()
            print(render_table(results))
        print(f"\n{render_machine(facts)}")
    if leaky:
        say(f"FAILED: isolation broken: another tenant's VM answered (H = {leaky}); "
            "see leak_examples in --json")
        return 1
    return 0
