"""The process: `python -m benchmarks.fake_fleet --port P --switches N`, running the JSON-line
commands read on stdin one at a time until `quit` or the end of input."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import benchmarks.fake_fleet as package
from benchmarks.fake_fleet.fleet import Fleet, emit


async def serve(fleet: Fleet) -> None:
    """Run commands one at a time; end of input (the benchmark is gone) ends even a `wait`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
        "connect": fleet.connect, "track": fleet.track, "wait": fleet.wait,
        "report": fleet.report, "macs": fleet.macs}
    try:
        line = await reader.readline()
        while line and (cmd := json.loads(line))["op"] != "quit":
            task = asyncio.ensure_future(commands[cmd["op"]](cmd))
            next_line = asyncio.ensure_future(reader.readline())
            await asyncio.wait({task, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if next_line.done() and not next_line.result():
                task.cancel()
                break
            emit(await task)
            line = await next_line
    finally:
        fleet.close()


def raise_fd_limit(wanted: int) -> None:
    """Enough file descriptors for every simulated switch (the scale benchmark uses it too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fake_fleet",
                                description=(package.__doc__ or "").splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the controller's OpenFlow port")
    p.add_argument("--switches", type=int, required=True)
    p.add_argument("--dpid-base", type=int, default=1, help="datapath id of switch 0")
    p.add_argument("--tls-dir", type=Path,
                   help="connect over TLS: switch i presents swI.key/swI.crt and trusts "
                        "controllerca.pem (benchmarks.scale.certs)")
    args = p.parse_args(argv)
    raise_fd_limit(args.switches + 256)
    asyncio.run(serve(Fleet(args.host, args.port, args.switches, args.dpid_base,
                            args.tls_dir)))
    return 0
