"""The traffic measured between the two VMs of a lab: an iperf3 server in the destination
VM, a warm-up ping, then ping latency, single-stream throughput (with CPU) and datapath
megaflows under many connections."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from benchmarks.common import BenchmarkError
from benchmarks.dataplane.base import PING_COUNT, PING_INTERVAL
from benchmarks.dataplane.cpu import cpu_snapshot, cpu_usage
from benchmarks.dataplane.parsing import IperfResult, count_megaflows, parse_iperf, parse_ping
from benchmarks.dataplane.side import Side
from dove_lab import probe
from dove_lab.state import VmState

IPERF_PORT = 5432  # the port policies/example.yaml lets web open to db (--mode routed)


@contextmanager
def iperf_server(vm: VmState, timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """`iperf3 -s` in the VM's namespace, listening before this yields; killed on leaving.

    Not daemonised: a process left in a namespace would outlive the lab's `down`.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["ip", "netns", "exec", vm.netns, "iperf3", "-s", "-p",
                                 str(IPERF_PORT)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            _wait_listening(vm, proc, err, timeout)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_listening(vm: VmState, proc: subprocess.Popen[bytes], err: IO[bytes],
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listening = subprocess.run(
            ["ip", "netns", "exec", vm.netns, "ss", "-Hltn", f"sport = :{IPERF_PORT}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()
        if listening:
            return
        if proc.poll() is not None:
            err.seek(0)
            raise BenchmarkError(f"iperf3 server in {vm.name} exited ({proc.returncode}): "
                                 f"{err.read().decode(errors='replace').strip()}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"iperf3 server in {vm.name} not listening on port "
                                 f"{IPERF_PORT} within {timeout:.0f} s")
        time.sleep(0.05)


def iperf_argv(src: VmState, dst: VmState, seconds: float, streams: int = 1) -> list[str]:
    argv = ["ip", "netns", "exec", src.netns, "iperf3", "-c", dst.ip, "-p", str(IPERF_PORT),
            "-t", f"{seconds:g}", "-J", "--connect-timeout", "5000"]
    return argv + (["-P", str(streams)] if streams > 1 else [])


def warm_up(side: Side, timeout: float = 10.0) -> None:
    """Ping until the first reply, so first-packet work (ARP) is not measured."""
    if not probe.ping(side.src, side.dst.ip, count=1, timeout=timeout):
        raise BenchmarkError(f"{side.label} lab {side.lab.name}: {side.src.name} got no reply "
                             f"from {side.dst.name} ({side.dst.ip}) within {timeout:.0f} s")


def measure_ping(side: Side) -> None:
    deadline = max(2, math.ceil(PING_COUNT * PING_INTERVAL + 3))
    out = subprocess.run(["ip", "netns", "exec", side.src.netns, "ping", "-n", "-c",
                          str(PING_COUNT), "-i", str(PING_INTERVAL), "-w", str(deadline),
                          side.dst.ip], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=deadline + 10)
    rtts = parse_ping(out.stdout)
    if not rtts:
        raise BenchmarkError(f"{side.label}: no ping reply from {side.dst.ip}: "
                             f"{(out.stdout + out.stderr).strip()[-300:]}")
    side.rtts += rtts
    side.pings_sent += PING_COUNT


def measure_throughput(side: Side, seconds: float) -> IperfResult:
    before = cpu_snapshot(side.cpu_pids)
    proc = subprocess.run(iperf_argv(side.src, side.dst, seconds), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=seconds + 60)
    after = cpu_snapshot(side.cpu_pids)
    result = parse_iperf(proc.stdout or proc.stderr)
    side.runs.append(result)
    side.mbps.append(result.mbps)
    side.cpu.append(cpu_usage(before, after))
    return result


def measure_megaflows(side: Side, seconds: float, connections: int) -> None:
    """Datapath flows on both hypervisors, sampled while `connections` TCP streams run."""
    state = side.lab.state()
    ovs1, ovs2 = (side.lab.ovs(state.hypervisors[h]) for h in ("hv1", "hv2"))
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(iperf_argv(side.src, side.dst, seconds, connections),
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            # Sample from 1 s in (every connection open) to the end of the run.
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if 1.0 <= elapsed <= seconds - 0.5:
                    side.megaflows_hv1.append(count_megaflows(ovs1.appctl("dpctl/dump-flows")))
                    side.megaflows_hv2.append(count_megaflows(ovs2.appctl("dpctl/dump-flows")))
                if elapsed > seconds + 60:
                    raise BenchmarkError(f"{side.label}: iperf3 -P {connections} did not end")
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        side.parallel = parse_iperf(out.read().decode(errors="replace"))
    if not side.megaflows_hv1:
        raise BenchmarkError(f"{side.label}: no megaflow sample taken (--seconds too short?)")


_ACCEPT = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(512)
while True:
    s.accept()[0].close()
"""
_CONNECT = """
import socket, sys, time
ip, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end, done = time.monotonic() + seconds, 0
while time.monotonic() < end:
    try:
        socket.create_connection((ip, port), timeout=1).close()
        done += 1
    except OSError:
        pass
print(done / seconds)
"""


def measure_connection_rate(side: Side, seconds: float) -> float:
    """New TCP connections per second from src to dst, one at a time (each a new conntrack
    entry on a routed path), against a server that accepts and closes."""
    server = subprocess.Popen(["ip", "netns", "exec", side.dst.netns, sys.executable, "-c",
                               _ACCEPT, str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # (a benchmark's fixed start-up; the client retries anyway)
        out = subprocess.run(["ip", "netns", "exec", side.src.netns, sys.executable, "-c",
                              _CONNECT, side.dst.ip, str(IPERF_PORT), str(seconds)],
                             capture_output=True, text=True, timeout=seconds + 30)
    finally:
        server.kill()
        server.wait()
    rate = float(out.stdout.strip() or 0.0)
    side.connections_per_s = rate
    return rate
