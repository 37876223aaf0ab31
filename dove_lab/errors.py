"""The error every lab operation raises when it cannot be done."""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab operation could not be done; the message says why and what to do."""
