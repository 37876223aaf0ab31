"""The figures of a run from its phases: the cold start's, each event phase's, the headline,
and the issue's targets (stated for 1,000 switches) against them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks.scale.meters import peak_rss_mb
from benchmarks.scale.phases import Phase
from benchmarks.scale.world import Binding

TARGETS = {"switches": 1000, "flowmods_x_encode": 10, "events_per_s": 500, "p99_ms": 100,
           "cold_start_s": 60, "rss_mb": 2048}


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def cold_figures(p: Phase) -> dict[str, Any]:
    t0 = p.extra["t0"]
    firsts = [s["first_flow_mod"] for s in p.switches if s["first_flow_mod"]]
    program_s = p.last_commit - min(firsts) if firsts else 0.0
    handshakes = [s["features"] - t0 for s in p.switches if "features" in s]
    return {
        "cold_start_s": round(p.last_commit - t0, 2) if p.last_commit else None,
        "flowmods_per_s": round(p.flow_mods / program_s) if program_s > 0 else None,
        "flowmods_per_cpu_s": round(p.flow_mods / p.cpu_s) if p.cpu_s > 0 else None,
        "flow_mods": p.flow_mods,
        "flows_per_switch": round(sum(s["installed"] for s in p.switches) / len(p.switches), 1),
        "handshakes_p50_s": round(percentile(handshakes, 0.5) or 0, 2),
        "handshakes_done_s": round(max(handshakes), 2) if handshakes else None,
        "switches_connected": len(handshakes),
        "connect_attempts_max": max(s["attempts"] for s in p.switches),
        "switches_that_reconnected": sum(1 for s in p.switches if s["attempts"] > 1),
        "switches_committed": sum(1 for s in p.switches if s["commits"]),
        "bundles": sum(len(s["commits"]) for s in p.switches),
        "complete": p.waited["done"],
        "missing_pairs": p.waited["missing_pairs"],
        "cpu_s": round(p.cpu_s, 2),
        "engine_s": round(p.engine_s, 2),
    }


def event_figures(p: Phase, posted: list[float], planned: list[Binding]) -> dict[str, Any]:
    adds = [p.macs[ev.mac][0] - t for ev, t in zip(planned, posted, strict=True)
            if p.macs[ev.mac][0] > 0]
    commits = [p.macs[ev.mac][1] - t for ev, t in zip(planned, posted, strict=True)
               if p.macs[ev.mac][1] > 0]
    last = max((p.macs[ev.mac][0] for ev in planned), default=0.0)
    elapsed = last - posted[0] if posted and last else 0.0
    hosting = sum(p.extra["hosting"]) / len(planned)
    per_event = p.flow_mods / len(planned)
    return {
        "events": len(planned),
        "events_per_s": round(len(planned) / elapsed, 1) if elapsed > 0 else None,
        "post_s": round(posted[-1] - posted[0], 3),
        "p50_ms": ms(percentile(adds, 0.5)), "p99_ms": ms(percentile(adds, 0.99)),
        "max_ms": ms(max(adds, default=None)),
        "p99_commit_ms": ms(percentile(commits, 0.99)),
        "flowmods_per_event": round(per_event, 1),
        "flowmods_per_s": round(p.flow_mods / elapsed) if elapsed > 0 else None,
        "hosting_hvs_per_event": round(hosting, 1),
        "flowmods_per_hosting_hv": round(per_event / hosting, 2),
        "switches_touched": p.touched,
        "cpu_s": round(p.cpu_s, 2),
        "cpu_ms_per_event": round(1000 * p.cpu_s / len(planned), 2),
        "engine_ms_per_event": round(1000 * p.engine_s / len(planned), 2),
        "complete": p.waited["done"], "missing_pairs": p.waited["missing_pairs"],
    }


def verdicts(r: dict[str, Any]) -> dict[str, Any]:
    """Each target of the issue (stated for 1,000 switches) against this run."""
    encode = r["osken_encode_per_s"]

    def check(measured: float | None, target: float, higher_is_better: bool) -> dict[str, Any]:
        met = measured is not None and (measured >= target if higher_is_better
                                        else measured < target)
        return {"measured": measured, "target": target, "met": met}

    return {
        "at_switches": TARGETS["switches"],
        "flowmods_per_s": check(r["flowmods_per_s"], TARGETS["flowmods_x_encode"] * encode,
                                True),
        "events_per_s": check(r["events_per_s"], TARGETS["events_per_s"], True),
        "p99_ms": check(r["p99_ms"], TARGETS["p99_ms"], False),
        "cold_start_s": check(r["cold_start_s"], TARGETS["cold_start_s"], False),
        "controller_rss_mb": check(r["controller_rss_mb"], TARGETS["rss_mb"], False),
    }


def headline(cold: dict[str, Any], paced: dict[str, Any] | None, burst: dict[str, Any] | None,
             extra: dict[str, Any]) -> dict[str, Any]:
    """The figures of the issue; event figures are None when the cold start did not finish."""
    return {
        "events_per_s": burst["events_per_s"] if burst else None,
        "p50_ms": paced["p50_ms"] if paced else None,
        "p99_ms": paced["p99_ms"] if paced else None,
        "flowmods_per_event": paced["flowmods_per_event"] if paced else None,
        "flowmods_per_s": cold["flowmods_per_s"],
        "cold_start_s": cold["cold_start_s"] if cold["complete"] else None,
        "controller_rss_mb": round(peak_rss_mb(), 1),
        "osken_encode_per_s": extra["osken_encode_per_s"],
        "flows_per_switch": cold["flows_per_switch"],
        "cpu_s": extra["cpu_s"],
    }
