"""What every part of the scale benchmark shares: the repository it runs from, and its error."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class BenchmarkFailed(RuntimeError):
    """The run could not measure what it should; the message says why."""
