"""What every part of the convergence benchmark shares: the policy it runs, its error, its voice."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "example.yaml"
NETWORKS = ("acme/web", "globex/web")
UNPLUG_PLUG, PREPLUGGED = "unplug-then-plug", "preplugged"  # the two kinds of move


class BenchError(RuntimeError):
    """The benchmark could not measure what it should; the message says what and why."""


def say(text: str) -> None:
    print(f"convergence: {text}", file=sys.stderr, flush=True)
