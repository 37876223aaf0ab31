"""The command line: `python -m benchmarks.scale`, its options (the synthetic world's are
shared with benchmarks.engine_alone) and what it prints (a summary, or JSON with --json)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchmarks.scale as package
from benchmarks.common import print_json
from benchmarks.fake_fleet.cli import raise_fd_limit
from benchmarks.scale.base import BenchmarkFailed
from benchmarks.scale.run import run
from benchmarks.scale.world import SUBNET


def print_text(r: dict[str, Any]) -> None:
    print(f"controller at scale: {r['switches']} switches, {r['endpoints']} endpoints, "
          f"{r['tenants']} tenants, spread {r['spread']}, {r['networks']} networks and "
          f"{r['rules']} rules per tenant")
    for key in ("events_per_s", "p50_ms", "p99_ms", "flowmods_per_event", "flowmods_per_s",
                "cold_start_s", "controller_rss_mb", "osken_encode_per_s", "flows_per_switch",
                "cpu_s"):
        print(f"  {key:22} {r[key]}")
    for name, v in r["targets"].items():
        if isinstance(v, dict):
            print(f"  target {name:15} {v['measured']} vs {round(v['target'], 1)}: "
                  f"{'met' if v['met'] else 'MISSED'}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def add_world_options(p: argparse.ArgumentParser, switches: int) -> None:
    """The synthetic world's options, shared with benchmarks.engine_alone."""
    p.add_argument("--switches", type=positive, default=switches,
                   help=f"hypervisors ({switches})")
    p.add_argument("--endpoints", type=positive, help="initial endpoints (20 x switches)")
    p.add_argument("--tenants", type=positive, help="tenants, one network each (switches/5)")
    p.add_argument("--spread", type=positive, default=20, help="hypervisors per tenant (20)")
    p.add_argument("--networks", type=positive, default=1,
                   help="networks per tenant, splitting its /24 (1)")
    p.add_argument("--rules", type=int, default=0,
                   help="allow rules per tenant between its networks (0; needs --networks >= 2)")


def world_defaults(args: argparse.Namespace) -> None:
    args.endpoints = args.endpoints or 20 * args.switches
    args.tenants = args.tenants or max(1, args.switches // 5)


def world_problem(args: argparse.Namespace, per_tenant: int) -> str | None:
    """Why the options cannot make a world, if they cannot."""
    if args.rules < 0 or args.rules and args.networks < 2:
        return "--rules connects networks: give --networks 2 or more (and --rules >= 0)"
    if args.rules > args.networks * (args.networks - 1):
        return f"{args.networks} networks have at most {args.networks * (args.networks - 1)} " \
               "one-way pairs for --rules"
    room = (SUBNET.num_addresses >> (args.networks - 1).bit_length()) - 3
    if -(-per_tenant // args.networks) > room:
        return (f"{per_tenant} endpoints per tenant do not fit {args.networks} network(s) of "
                f"{room} addresses each: use more --tenants")
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale",
                                description=(package.__doc__ or "").splitlines()[0])
    add_world_options(p, switches=100)
    p.add_argument("--events", type=positive, default=300,
                   help="binding events in each event phase (300)")
    p.add_argument("--isolated", type=positive, default=20,
                   help="events posted one at a time, each waited for (20)")
    p.add_argument("--rate", type=float, default=500.0, help="paced events per second (500)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give up a phase after this many seconds (300)")
    p.add_argument("--workdir", type=Path,
                   help="keep the policy, controller log and fleet stderr here (default: a "
                        "temporary directory, removed)")
    p.add_argument("--hostile", action="store_true",
                   help="attack the OpenFlow port during the event phases "
                        "(benchmarks.scale.hostile) and show the verdicts still hold")
    p.add_argument("--tls", action="store_true",
                   help="OpenFlow over mutual TLS, a certificate per switch (default: plaintext)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    world_defaults(args)
    events = 2 * args.events + args.isolated
    per_tenant = -(-args.endpoints // args.tenants) + -(-events // args.tenants)
    problem = world_problem(args, per_tenant)
    if problem:
        print(f"scale: {problem}", file=sys.stderr)
        return 2
    raise_fd_limit(4 * args.switches + 1024)
    with tempfile.TemporaryDirectory(prefix="dove-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = run(args, workdir)
        except BenchmarkFailed as exc:
            print(f"scale: {exc}", file=sys.stderr)
            print((workdir / "fleet.stderr").read_text()[-2000:], file=sys.stderr)
            return 1
    if args.json:
        print_json(result)
    else:
        print_text(result)
    return 0  # the controller's threads (os-ken's, the engine's) are daemons: this ends them
