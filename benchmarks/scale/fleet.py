"""The fake switch fleet (benchmarks.fake_fleet) in a process of its own, driven over pipes:
a JSON command out, JSON lines back."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmarks.scale.base import REPO, BenchmarkFailed


class FleetClient:
    """benchmarks/fake_fleet.py over pipes: a command out, JSON lines back."""

    def __init__(self, port: int, switches: int, stderr: IO[str],
                 tls_dir: Path | None = None) -> None:
        tls = ["--tls-dir", str(tls_dir)] if tls_dir is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_fleet", "--port", str(port),
             "--switches", str(switches), *tls], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="fleet-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def call(self, op: str, patience: float, **args: Any) -> dict[str, Any]:
        """Send a command; its answer, waiting at most `patience` seconds."""
        self.send(op, **args)
        return self.expect(patience)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def expect(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchmarkFailed(f"fake fleet silent for {timeout:.0f} s") from None
        if line is None:
            raise BenchmarkFailed(f"fake fleet exited ({self.proc.poll()}); see its stderr")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def report(self, timeout: float) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
        """Per-switch lines and per-MAC [last add, last commit, switches] of this phase."""
        self.send("report")
        switches: list[dict[str, Any]] = []
        macs: dict[str, list[float]] = {}
        while (msg := self.expect(timeout))["op"] != "reported":
            if msg["op"] == "switch":
                switches.append(msg)
            elif msg["op"] == "macs":
                macs = msg["macs"]
        return switches, macs

    def cpu_s(self) -> float:
        """The fleet process's CPU time so far (to show it was not the bottleneck)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def fleet_process(port: int, switches: int, workdir: Path,
                  tls_dir: Path | None = None) -> Iterator[FleetClient]:
    with open(workdir / "fleet.stderr", "w") as err:
        fleet = FleetClient(port, switches, err, tls_dir)
        try:
            yield fleet
        finally:
            fleet.close()
