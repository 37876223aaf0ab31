"""Receiving JSON-RPC from ovsdb-server faster than python-ovs does, and without its UTF-8 bug.

python-ovs parses JSON in pure Python (its C parser needs libopenvswitch at build time), which
made parsing most of the manager's CPU time when hypervisors connect. Here the Framer only cuts
the byte stream into whole messages and the C json module parses them; FramingConnection puts
that under python-ovs's Session and Idl, which otherwise stay as they are.
"""

from __future__ import annotations

import codecs
import collections
import errno
import json
import logging
import re
from typing import Any

import ovs.jsonrpc
import ovs.util

from ovsdb_agent.peerlog import RateLimit, printable

# The manager's logger: these records belong to its connections (log filters select it).
LOG = logging.getLogger("ovsdb_agent.manager")
_LIMITED = RateLimit(LOG)  # one line per bad peer message at most a few times a second

MAX_MESSAGE = 64 << 20  # characters: far over any hypervisor's database, far under our memory
MAX_DEPTH = 64  # OVSDB's JSON nests a dozen deep; deeper is not OVSDB
_OUTSIDE_STRING = re.compile(r'[{}\[\]"]')
_INSIDE_STRING = re.compile(r'["\\]')


MAX_TOTAL_PENDING = 256 << 20  # characters of unfinished messages, all connections together


class FramingError(ValueError):
    """The peer's stream is not a sequence of OVSDB-sized JSON messages."""


class PendingBudget:
    """Characters of messages not yet whole, summed over connections: each one is bounded
    (MAX_MESSAGE), and this bounds them together, so that many peers each sending a large
    unfinished message cannot take the memory one could not."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


BUDGET = PendingBudget(MAX_TOTAL_PENDING)  # the process's: its managers share one memory


class Framer:
    """Cuts a stream of JSON-RPC messages (JSON objects back to back) into whole messages.

    It only tracks nesting and strings, with regular expressions, and leaves parsing to the C
    json module. Each character is scanned once and a message's pieces are joined once, so a
    large initial dump arriving in many reads costs linear time.
    """

    def __init__(self, budget: PendingBudget = BUDGET) -> None:
        self._budget = budget
        self._pieces: list[str] = []  # the text of the message not yet whole
        self._whole: collections.deque[str] = collections.deque()
        self._depth = 0
        self._in_string = False
        self._skip = 0  # 1 when a read ended on a backslash: the next character is escaped
        self._pending = 0  # characters of the message not yet whole

    def feed(self, text: str) -> None:
        """Raises FramingError for a message over MAX_MESSAGE or nested over MAX_DEPTH; the
        connection is then unusable (the stream can no longer be cut in messages)."""
        pos, start = self._skip, 0
        while True:
            pattern = _INSIDE_STRING if self._in_string else _OUTSIDE_STRING
            m = pattern.search(text, pos)
            if m is None:
                break
            pos, c = m.end(), m.group()
            if c == "\\":
                pos += 1  # skip the escaped character, even a quote
            elif c == '"':
                self._in_string = not self._in_string
            elif c in "{[":
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise FramingError(f"JSON nested more than {MAX_DEPTH} deep")
            else:
                self._depth -= 1
                if self._depth <= 0:  # below zero is garbage, and json.loads will say so
                    self._pieces.append(text[start:pos])
                    self._whole.append("".join(self._pieces))
                    self._pieces, self._depth, start = [], 0, pos
                    self._set_pending(0)
        self._skip = max(0, pos - len(text))
        if start < len(text):
            self._pieces.append(text[start:])
            self._set_pending(self._pending + len(text) - start)
            if self._pending > MAX_MESSAGE:
                raise FramingError(f"a message longer than {MAX_MESSAGE} characters")
            if self._budget.used > self._budget.limit:
                raise FramingError(f"all connections together are sending more than "
                                   f"{self._budget.limit} characters of unfinished messages")

    def release(self) -> None:
        """The connection is gone: its unfinished message no longer counts."""
        self._pieces = []
        self._set_pending(0)

    def _set_pending(self, value: int) -> None:
        self._budget.used += value - self._pending
        self._pending = value

    def next(self) -> str | None:
        """The next whole message's text, or None until more data arrives."""
        return self._whole.popleft() if self._whole else None

    def has_whole(self) -> bool:
        return bool(self._whole)


class FramingConnection(ovs.jsonrpc.Connection):
    """ovs.jsonrpc.Connection with Framer and the C json parser for receiving.

    It also keeps one UTF-8 decoder per connection: python-ovs 4.0 starts a new one for every
    read, so a character split between two reads would drop the connection.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._framer = Framer()
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def recv(self) -> tuple[int, Any]:
        if self.status:
            return self.status, None
        while True:
            text = self._framer.next()
            if text is not None:
                return self._message(text)
            error, data = self.stream.recv(65536)
            if error:
                if error != errno.EAGAIN:
                    self.error(error)
                return error, None
            if not data:
                self.error(ovs.util.EOF)
                return ovs.util.EOF, None
            self.received_bytes += len(data)
            try:
                self._framer.feed(self._decoder.decode(data))
            except UnicodeError:
                self.error(errno.EILSEQ)
                return self.status, None
            except FramingError as exc:
                _LIMITED.log(logging.WARNING, "framing", "OVSDB connection %s: %s", self.name,
                             exc)
                self.error(errno.EMSGSIZE)
                return self.status, None

    def _message(self, text: str) -> tuple[int, Any]:
        try:
            msg = ovs.jsonrpc.Message.from_json(json.loads(text))
        except (ValueError, TypeError, RecursionError) as exc:
            msg = str(exc)
        if not isinstance(msg, ovs.jsonrpc.Message):  # from_json returns errors as strings
            _LIMITED.log(logging.WARNING, "bad message", "OVSDB connection %s: bad JSON-RPC "
                         "message: %s", self.name, printable(msg))
            self.error(errno.EPROTO)
            return self.status, None
        return 0, msg

    def close(self) -> None:
        self._framer.release()
        super().close()

    def error(self, error: int) -> None:
        self._framer.release()  # the stream can no longer be read: nothing it holds counts
        super().error(error)

    def recv_wait(self, poller: Any) -> None:
        if self.status or self._framer.has_whole():
            poller.immediate_wake()
        else:
            self.stream.recv_wait(poller)
