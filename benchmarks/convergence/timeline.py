"""Where a phase's time went: the plug transactions, the controller's log, the first replies.

The controller runs with `--debug=ryu_dove.openflow.reconciler`; its log says `endpoint ... on
HV` when the engine has taken a port's OVSDB report and `HV: bundle|update N committed` when
the engine has handled the switch's commit or barrier reply.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ \S+: (.*)$")
ENDPOINT_MSG = re.compile(r"^endpoint (\S+) (\S+) (\S*) (on|left) (\S+) port (\S+)$")
BUNDLE_MSG = re.compile(
    r"^(\S+): (?:bundle|update) (\d+) committed: \+(\d+) -(\d+) flows in ([\d.]+) ms$")


@dataclass
class LogEvents:
    endpoints: list[tuple[float, str, str]] = field(default_factory=list)  # (wall, hv, port)
    left: list[tuple[float, str, str]] = field(default_factory=list)
    bundles: list[tuple[float, str, int, int, float]] = field(default_factory=list)


def read_log(path: str, since_wall: float, until_wall: float) -> LogEvents:
    """Endpoint and bundle events of the controller's log between two wall-clock times."""
    events = LogEvents()
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return events
    for line in lines:
        m = LOG_LINE.match(line)
        if m is None:
            continue
        wall = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e3
        if not since_wall - 0.001 <= wall <= until_wall + 0.001:
            continue
        msg = m.group(3)
        if e := ENDPOINT_MSG.match(msg):
            (events.endpoints if e.group(4) == "on" else events.left).append(
                (wall, e.group(5), e.group(6)))
        elif b := BUNDLE_MSG.match(msg):
            events.bundles.append((wall, b.group(1), int(b.group(3)), int(b.group(4)),
                                   float(b.group(5))))
    return events


def timeline(log: str, wall0: float, t0: float, plug_done: Iterable[float],
             firsts: Iterable[float]) -> dict[str, Any]:
    """Seconds after t0: the plug transactions, the controller's log, the first replies."""
    ev = read_log(log, wall0, time.time())

    def rel(walls: list[float]) -> tuple[float | None, float | None]:
        return (round(min(walls) - wall0, 4), round(max(walls) - wall0, 4)) if walls \
            else (None, None)

    ep_first, ep_last = rel([w for w, _, _ in ev.endpoints])
    b_first, b_last = rel([w for w, *_ in ev.bundles])
    left_first, _ = rel([w for w, _, _ in ev.left])
    plugged = [p - t0 for p in plug_done]
    return {
        "plug_txn_done_s": round(max(plugged), 4) if plugged else None,
        "endpoints_seen": len(ev.endpoints),
        "first_endpoint_s": ep_first, "last_endpoint_s": ep_last,
        "endpoints_left": len(ev.left), "first_left_s": left_first,
        "bundles": len(ev.bundles),
        "flows_added": sum(b[2] for b in ev.bundles),
        "flows_deleted": sum(b[3] for b in ev.bundles),
        "first_bundle_s": b_first, "last_bundle_s": b_last,
        "max_bundle_ms": max((b[4] for b in ev.bundles), default=None),
        **reply_figures(sorted(f - t0 for f in firsts)),
    }


def reply_figures(replies: list[float]) -> dict[str, float | None]:
    """First, median, 90th percentile and last of sorted first-reply times."""
    if not replies:
        return dict.fromkeys(("first_reply_s", "median_reply_s", "p90_reply_s",
                              "last_reply_s"))
    return {
        "first_reply_s": round(replies[0], 4),
        "median_reply_s": round(statistics.median(replies), 4),
        "p90_reply_s": round(replies[int(0.9 * (len(replies) - 1))], 4),
        "last_reply_s": round(replies[-1], 4),
    }
