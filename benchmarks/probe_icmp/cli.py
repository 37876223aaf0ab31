"""As a tool: `python -m benchmarks.probe_icmp --netns NS [--mac MAC] DST_IP...` prints the
first-reply time of each destination as JSON (run as root)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks.probe_icmp.base import INTERVAL_S, ProbeError, ProbeVm
from benchmarks.probe_icmp.prober import IcmpProber


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_icmp",
                                description="First-reply times of raw ICMP echoes sent from "
                                            "inside a network namespace (root).")
    p.add_argument("--netns", required=True, help="namespace to send from (its eth0)")
    p.add_argument("--mac", action="append", default=[],
                   help="expected MAC of each destination, in order (default: any)")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=INTERVAL_S)
    p.add_argument("dst", nargs="+", help="destination IPv4 addresses")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.mac and len(args.mac) != len(args.dst):
        p.error("give --mac once per destination, or not at all")
    if os.geteuid() != 0:
        print("probe_icmp: needs root (raw sockets, setns)", file=sys.stderr)
        return 2
    src = ProbeVm("src", args.netns, "0.0.0.0", "00:00:00:00:00:00", "probe")
    with IcmpProber(args.interval, check_mac=bool(args.mac)) as prober:
        try:
            prober.add_vm(src)
        except ProbeError as exc:
            print(f"probe_icmp: {exc}", file=sys.stderr)
            return 2
        dsts = []
        for i, ip in enumerate(args.dst):
            mac = args.mac[i].lower() if i < len(args.mac) else f"02:00:00:00:00:{i:02x}"
            dst = ProbeVm(f"dst{i}", "", ip, mac, "probe")
            dsts.append(dst)
            prober.add_vm(dst, sockets=False)
        t0 = time.monotonic()
        session = prober.until_answered((src, d) for d in dsts)
        session.wait(args.timeout)
        firsts = session.first_replies()
    out: dict[str, float | None] = {}
    for d in dsts:
        first = firsts[("src", d.name)]
        out[d.ip] = None if first is None else round(first - t0, 6)
    print(json.dumps({"netns": args.netns, "first_reply_s": out, "leaks": len(prober.leaks)}))
    return 0 if all(v is not None for v in out.values()) else 1
