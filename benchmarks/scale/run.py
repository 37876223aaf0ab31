"""One run: the controller and the fleet started, the phases in order, and the whole result
with the code measured and the machine it ran on."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import command_line, machine_facts
from benchmarks.scale import certs
from benchmarks.scale.base import REPO
from benchmarks.scale.controller import engine_barrier, free_port, start_controller
from benchmarks.scale.figures import cold_figures, event_figures, headline, verdicts
from benchmarks.scale.fleet import fleet_process
from benchmarks.scale.meters import CpuMeter, GcMeter
from benchmarks.scale.phases import Bench, cold_start, events, ingest, isolated, osken_encode_per_s
from benchmarks.scale.world import Hypervisors, World, hv_name


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                                  timeout=10, stdin=subprocess.DEVNULL).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "ryu_dove",
                  "ovsdb_agent")
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "controller_dirty": bool(changed)}


@contextmanager
def hostile_beside(args: argparse.Namespace, port: int, workdir: Path,
                   ) -> Iterator[dict[str, Any] | None]:
    """With --hostile, benchmarks.scale.hostile attacks the OpenFlow port while the block
    runs; the dict it yields gets the attacker's counts when the block ends."""
    if not args.hostile:
        yield None
        return
    counts: dict[str, Any] = {}
    cmd = [sys.executable, "-m", "benchmarks.scale.hostile", "--port", str(port),
           "--seconds", "3600", *(["--tls"] if args.tls else [])]
    with open(workdir / "hostile.stderr", "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            time.sleep(2.0)  # let the attack be under way before the measured phases
            yield counts
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=20)
                counts.update(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})
            except (subprocess.TimeoutExpired, ValueError):
                proc.kill()
                proc.wait()


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    world = World(args.switches, args.endpoints, args.tenants, min(args.spread, args.switches),
                  args.networks, args.rules)
    load_start = round(os.getloadavg()[0], 2)  # other work on the machine skews wall times
    baseline = {"osken_encode_per_s": round(osken_encode_per_s()),
                "osken_bundle_add_per_s": round(osken_encode_per_s(bundled=True))}
    policy = workdir / "scale-policy.yaml"
    policy.write_text(world.policy_yaml())
    ofp_port = free_port()
    tls_dir = workdir / "certs" if args.tls else None
    tls = (certs.make(tls_dir, [hv_name(i) for i in range(world.switches)])
           if tls_dir is not None else None)
    app = start_controller(policy, workdir / "controller.log", ofp_port, tls)
    cpu, gc_meter = CpuMeter(app.engine), GcMeter()
    with fleet_process(ofp_port, world.switches, workdir, tls_dir) as fleet:
        b = Bench(args, world, Hypervisors(world), app.engine, fleet, cpu)
        ingested = ingest(b)
        cold = cold_figures(cold_start(b))
        single = paced = burst = attacks = None  # not measured on an incomplete cold start
        if cold["complete"]:
            with hostile_beside(args, ofp_port, workdir) as attacks:
                single = event_figures(*isolated(b, args.isolated))
                paced = event_figures(*events(b, args.events, args.rate))
                burst = event_figures(*events(b, args.events, None))
        engine_barrier(app.engine, args.timeout)
        in_sync = sum(1 for rec in list(app.engine.reconcilers.values()) if rec.in_sync)
        fleet_cpu_s = round(fleet.cpu_s(), 2)
        load_end = round(os.getloadavg()[0], 2)  # before the fleet goes: 2 threads a switch end
    app.saved.stop()  # its thread writes into workdir, which goes next
    extra = {**baseline, "cpu_s": round(cpu.controller_s(), 2)}
    result = {**headline(cold, paced, burst, extra), **baseline}
    return {
        "benchmark": "scale", "tls": bool(args.tls), "switches": world.switches,
        "endpoints": world.endpoints,
        "tenants": world.tenants, "spread": world.spread,
        "networks": world.networks, "rules": world.rules, "rate": args.rate, **result,
        "targets": verdicts(result),
        "ingest": ingested, "cold_start": cold, "isolated": single,
        "paced": paced, "burst": burst, "hostile": attacks,
        "switches_in_sync": in_sync, "fleet_cpu_s": fleet_cpu_s, **gc_meter.figures(),
        "saved_state": {"writes": app.saved.writes, "failures": app.saved.failures},
        "loadavg_1m": [load_start, load_end], "code": code_version(),
        "machine": machine_facts(), "command": command_line(),
    }
