"""A hostile OpenFlow client to run beside the scale benchmark: the controller must keep its
verdicts while it is attacked (`benchmarks.scale --hostile`).

For `--seconds`, on loopback only, with bounded counts and rates, it:
- churns connections (100 a second): HELLO then the 88-byte flow-stats reply whose entry has
  length 0 (it once looped os-ken's parser forever), then closes;
- holds `--silent` connections that never say anything (each held until the controller
  drops it, then opened again);
- over plain TCP, opens 4 connections that finish the OpenFlow handshake with datapath ids no
  hypervisor has, then send echo requests as fast as they can and never read the answers.
Over TLS (`--tls`) it has no certificate: every connection ends at the handshake, which is
the point. It prints one JSON line of counts at the end.

    python -m benchmarks.scale.hostile --port P --seconds 30 [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import struct
import time

HEADER = struct.Struct("!BBHI")
HELLO = HEADER.pack(4, 0, 16, 1) + struct.pack("!HHI", 1, 8, 1 << 4)
BAD_STATS = HEADER.pack(4, 19, 88, 7) + struct.pack("!HH4x", 1, 0) + bytes(72)  # entry len 0
ECHO = HEADER.pack(4, 2, 8, 9)


class Counts:
    def __init__(self) -> None:
        self.churned = self.silent_reopened = self.flood_bytes = self.refused = 0


class Clock:
    """The attack's end: `--seconds` from now, or at once on SIGINT (the benchmark is done)."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def running(self) -> bool:
        return time.monotonic() < self.until

    def stop(self) -> None:
        self.until = 0.0


async def _open(port: int, tls: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # and no certificate
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx), timeout=5)


async def churn(port: int, tls: bool, clock: Clock, counts: Counts) -> None:
    while clock.running():
        try:
            _, writer = await _open(port, tls)
            writer.write(HELLO + BAD_STATS)
            await writer.drain()
            writer.close()
            counts.churned += 1
        except (OSError, ssl.SSLError, TimeoutError):
            counts.refused += 1
        await asyncio.sleep(0.01)


async def silent(port: int, tls: bool, clock: Clock, counts: Counts) -> None:
    while clock.running():
        try:
            reader, writer = await _open(port, tls)
            while clock.running():  # until the controller drops it (read() returns)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(), timeout=1.0)
                    break
            writer.close()
            counts.silent_reopened += 1
        except (OSError, ssl.SSLError, TimeoutError):
            counts.refused += 1
            await asyncio.sleep(0.5)


async def flood(port: int, dpid: int, clock: Clock, counts: Counts) -> None:
    try:
        _, writer = await _open(port, False)
        writer.write(HELLO + HEADER.pack(4, 6, 32, 1)
                     + struct.pack("!QIBB2xII", dpid, 256, 254, 0, 0, 0))
        burst = ECHO * 8192
        while clock.running():
            writer.write(burst)
            counts.flood_bytes += len(burst)
            with contextlib.suppress(TimeoutError):  # it stopped reading us: it should
                await asyncio.wait_for(writer.drain(), timeout=0.5)
        writer.close()
    except (OSError, ssl.SSLError, TimeoutError):
        counts.refused += 1


async def main_async(args: argparse.Namespace) -> Counts:
    counts, clock = Counts(), Clock(args.seconds)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, clock.stop)
    tasks = [churn(args.port, args.tls, clock, counts)]
    tasks += [silent(args.port, args.tls, clock, counts) for _ in range(args.silent)]
    if not args.tls:
        tasks += [flood(args.port, 0xDEAD_0000 + i, clock, counts) for i in range(4)]
    await asyncio.gather(*tasks)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale.hostile")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--silent", type=int, default=200, help="connections held silent (200)")
    p.add_argument("--tls", action="store_true")
    args = p.parse_args(argv)
    counts = asyncio.run(main_async(args))
    print(json.dumps(vars(counts)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
