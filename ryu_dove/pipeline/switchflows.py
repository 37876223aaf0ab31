"""One switch's desired flows as the union of its parts, updated part by part.

The compiler (ryu_dove.pipeline.compiler) hands a switch its parts: a changed part costs work in
proportion to that part (or to its difference, when the compiler knows it), never to the
switch's thousands of flows, and every change is reported as the cookies that moved, which
is all the reconciler needs to diff.
"""

from __future__ import annotations

from collections.abc import Iterable

from ryu_dove.pipeline.flows import Flow, FlowMap

# ("defaults" | "endpoint" | "network" | "tunnel" | "tenant" | "lookup" | "ingress", name)
PartKey = tuple[str, str]


class SwitchFlows:
    """`flows` is the live union (cookie -> flow). A flow may belong to two parts (it should
    not, but a directory in flux may make it so); it stays while any part holds it."""

    def __init__(self) -> None:
        self.parts: dict[PartKey, FlowMap] = {}
        self.flows: dict[int, Flow] = {}
        self._more: dict[int, int] = {}  # cookie -> how many more parts hold it

    def update(self, parts: dict[PartKey, FlowMap]) -> set[int]:
        """Make the parts these (a part that is the same object as before costs nothing);
        returns the cookies added to or removed from `flows`."""
        changed: set[int] = set()
        old_parts, self.parts = self.parts, parts
        for key, new in parts.items():
            old = old_parts.get(key)
            if old is not new:
                self._diff(old or {}, new, changed)
        for key in old_parts.keys() - parts.keys():
            self._diff(old_parts[key], {}, changed)
        return changed

    def replace(self, key: PartKey, new: FlowMap | None, changed: set[int]) -> None:
        """One part changed to `new` (None: gone); adds the cookies that moved to `changed`."""
        old = self.parts.pop(key, None) or {}
        if new is not None:
            self.parts[key] = new
        if old is not new:
            self._diff(old, new or {}, changed)

    def changed_in_place(self, key: PartKey, added: FlowMap, removed: Iterable[int],
                         changed: set[int]) -> None:
        """Part `key` (the same object as before) was changed in place by this difference."""
        assert key in self.parts
        for cookie in removed:
            self._remove(cookie, changed)
        for cookie, f in added.items():
            self._add(cookie, f, changed)

    def _diff(self, old: FlowMap, new: FlowMap, changed: set[int]) -> None:
        for cookie in old.keys() - new.keys():
            self._remove(cookie, changed)
        for cookie in new.keys() - old.keys():
            self._add(cookie, new[cookie], changed)

    def _add(self, cookie: int, f: Flow, changed: set[int]) -> None:
        if cookie in self.flows:
            self._more[cookie] = self._more.get(cookie, 0) + 1
        else:
            self.flows[cookie] = f
            changed.add(cookie)

    def _remove(self, cookie: int, changed: set[int]) -> None:
        more = self._more.get(cookie, 0)
        if more > 1:
            self._more[cookie] = more - 1
        elif more == 1:
            del self._more[cookie]
        else:
            del self.flows[cookie]
            changed.add(cookie)
