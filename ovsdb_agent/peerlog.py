"""Logging what peers cause: their text escaped, their volume bounded.

Anything a switch, a hypervisor or a VM can put in a log line (names, iface-ids, error
text) goes through `printable` so a newline or an escape sequence cannot forge log lines or
drive the operator's terminal. And a peer that misbehaves a thousand times a second must
not write a thousand lines a second: `RateLimit` lets a few lines of one kind through per
interval and then says how many it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_TEXT = 200  # characters of peer text kept in one log line


def printable(text: object, limit: int = MAX_TEXT) -> str:
    """Peer text for a log line or a terminal: control characters and non-ASCII escaped
    (as Python writes them), cut at `limit` characters."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s if len(s) <= limit else s[:limit] + "..."
    escaped = s.encode("unicode_escape", "backslashreplace").decode("ascii")
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


class RateLimit:
    """At most `burst` log lines per `interval_s` for each kind; the rest are counted and
    reported with the next line let through."""

    def __init__(self, logger: logging.Logger, burst: int = 5, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # kind -> start, sent, held

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        now = self._clock()
        start, sent, held = self._windows.get(kind, (now, 0, 0))
        if now - start >= self._interval:
            start, sent = now, 0
        if sent >= self._burst:
            self._windows[kind] = (start, sent, held + 1)
            return
        if held:
            msg += f" ({held} more like this not logged)"
        self._windows[kind] = (start, sent + 1, 0)
        if len(self._windows) > 1024:  # kinds are few by design; never let them grow
            self._windows = {kind: self._windows[kind]}
        self._logger.log(level, msg, *args)
