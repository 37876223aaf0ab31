"""What every part of the convergence benchmark shares: the policy it runs, its error, its voice."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "example.yaml"
NETWORKS = ("acme/web", "globex/web")
# The kinds of move: unplug then plug a new incarnation; plug it first, then unplug; and a
# live migration of one VM (dove_lab.migration: standby port, switch-over, announcement).
UNPLUG_PLUG, PREPLUGGED, LIVE = "unplug-then-plug", "preplugged", "live"


class BenchError(RuntimeError):
    """The benchmark could not measure what it should; the message says what and why."""


def say(text: str) -> None:
    print(f"convergence: {text}", file=sys.stderr, flush=True)
