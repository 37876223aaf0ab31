"""What a management partition costs tenant traffic, in the one-machine lab (issue 11).

    python -m benchmarks.partition [--cuts 10,25,45] [--restart-cut 45] [--json]

Runs as root (docs/lab.md). One lab, two hypervisors with a VM of acme/web each, over TLS.
For each cut length: a 20 ms ping stream between the VMs runs while hv2's management link is
down (`dove-lab partition hv2`), then healed. With `--restart-cut`, one more cut during which
the controller is killed (SIGKILL) and started again. Figures per cut:
- `lost`: packets of the stream without a reply (of `sent`);
- `noticed_s`: from the cut until the API shows hv2 unreachable;
- `resynced_s`: from the heal until `/v1/controller` says synchronised again.
Before issue 11 (the issue's own figures, same kind of lab): a 25 s cut lost 0 or 8 s of
traffic, a 45 s cut 26 s, a controller restart during a cut 24 s; the API showed an
unreachable switch as connected for up to ~30 s.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from dove_lab import controller_proc
from dove_lab.lab import Lab
from dove_lab.topology import load_topology
from ryu_dove.policy import load_policy

REPO = Path(__file__).resolve().parents[1]
POLICY = str(REPO / "policies" / "example.yaml")
TOPOLOGY = """
hypervisors: [hv1, hv2]
vms:
  - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
"""
INTERVAL_S = 0.02
SETTLE_S = 10.0  # the stream runs this long after the heal


def api(lab: Lab, path: str) -> Any:
    with urllib.request.urlopen(f"{lab.status()['controller']['api']}{path}", timeout=5) as r:
        return json.load(r)


def until(condition: Any, timeout: float) -> float:
    """Seconds until condition() holds (polled every 50 ms); raises after the timeout."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except OSError:
            pass  # the API is not answering (a restarting controller)
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout} s")
        time.sleep(0.05)


def hv2_state(lab: Lab) -> str | None:
    return next((h["state"] for h in api(lab, "/v1/hypervisors") if h["name"] == "hv2"), None)


def one_cut(lab: Lab, seconds: float, restart: bool) -> dict[str, Any]:
    vms = lab.state().vms
    count = math.ceil((seconds + SETTLE_S + 2) / INTERVAL_S)
    ping = subprocess.Popen(["ip", "netns", "exec", vms["a1"].netns, "ping", "-n", "-q", "-i",
                             str(INTERVAL_S), "-c", str(count), "-w", str(int(seconds) + 60),
                             vms["a2"].ip], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        cut = time.monotonic()
        lab.partition("hv2", "all")
        noticed = until(lambda: hv2_state(lab) == "unreachable", 30)
        if restart:
            lab.controller_stop(kill=True)
            controller_proc.start(lab.state())
        time.sleep(max(0.0, seconds - (time.monotonic() - cut)))
        lab.heal("hv2", "all")
        resynced = until(lambda: api(lab, "/v1/controller")["synchronised"], 60)
        out, _ = ping.communicate(timeout=count * INTERVAL_S + 90)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, received = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    return {"cut_s": seconds, "controller_restarted": restart, "sent": sent,
            "lost": sent - received, "noticed_s": round(noticed, 2),
            "resynced_s": round(resynced, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.partition", description=__doc__.splitlines()[0])
    p.add_argument("--cuts", default="10,25,45", help="cut lengths in seconds (10,25,45)")
    p.add_argument("--restart-cut", type=float, default=45.0,
                   help="one more cut this long with a controller restart in it; 0: none")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    cuts = [(float(c), False) for c in args.cuts.split(",") if c]
    if args.restart_cut > 0:
        cuts.append((args.restart_cut, True))
    policy = load_policy([POLICY])
    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(tmp) / "pair.yaml"
        topology.write_text(TOPOLOGY)
        lab = Lab("bpart")
        try:
            lab.up(load_topology(str(topology), policy), [POLICY], policy, controller=True)
            results = [one_cut(lab, seconds, restart) for seconds, restart in cuts]
        finally:
            lab.down()
    if args.json:
        print(json.dumps({"benchmark": "partition", "results": results}, indent=2))
    else:
        for r in results:
            restart = " + controller restart" if r["controller_restarted"] else ""
            print(f"cut {r['cut_s']:.0f} s{restart}: lost {r['lost']} of {r['sent']}, "
                  f"unreachable after {r['noticed_s']} s, synchronised {r['resynced_s']} s "
                  "after the heal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
