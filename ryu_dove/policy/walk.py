"""What the walk over the policy files collects, before the cross-file checks.

A `FileWalk` reports problems of one file at their place; `Collected` holds what every file
gave so far: tenants and rules as written (network names not yet resolved: that needs every
file read), the VNIs in use, and the shared problem list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ryu_dove.policy.model import IPNetwork, Network, PortMapping, Proto, Where
from ryu_dove.policy.values import KINDS, describe, is_kind
from ryu_dove.policy.yamlmarks import Problem, unknown_key_problem, value_mark


@dataclass
class FileWalk:
    """One file being walked; reports into the loader's shared problem list."""

    path: str
    problems: list[Problem]

    def where(self, pos: tuple[int, int]) -> Where:
        return Where(self.path, *pos)

    def report(self, pos: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(self.path, pos[0], pos[1], message))

    def check_keys(self, node: dict[Any, Any], allowed: Sequence[str]) -> None:
        for key in node:
            if key not in allowed:
                self.problems.append(unknown_key_problem(self.path, node, key, allowed))

    def require(self, node: dict[Any, Any], keys: Sequence[str], owner: str,
                pos: tuple[int, int]) -> None:
        for key in keys:
            if key not in node:
                self.report(pos, f"{owner} is missing required key '{key}'")

    def get(self, node: dict[Any, Any], key: str, kind: type, what: str = "") -> Any:
        """node[key] when present and of ``kind``; otherwise None (reported if present)."""
        if key not in node:
            return None
        value = node[key]
        if is_kind(value, kind):
            return value
        expected = what or KINDS[kind]
        self.report(value_mark(node, key), f"'{key}' must be {expected}, got {describe(value)}")
        return None


@dataclass
class RawRule:
    """A rule before its network names are resolved (that needs every file read)."""

    src: str | None
    dst: str | None
    proto: Proto
    ports: tuple[int, int] | None
    where: Where
    src_at: Where
    dst_at: Where


@dataclass
class RawTenant:
    name: str
    where: Where
    networks: dict[str, Network] = field(default_factory=dict)
    # Every network name written, valid or not, so rules naming a broken
    # network do not add an "unknown network" error on top of the real one.
    declared: set[str] = field(default_factory=set)
    subnets: list[tuple[str, IPNetwork, Where]] = field(default_factory=list)
    rules: list[RawRule] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)


@dataclass
class Collected:
    """Everything the files read so far gave, and every problem found in them."""

    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    tenants: dict[str, RawTenant] = field(default_factory=dict)  # first definition of each name
    parsed: list[RawTenant] = field(default_factory=list)  # every definition, including repeats
    vnis: dict[int, Network] = field(default_factory=dict)
    exact_ports: dict[tuple[str, str], Where] = field(default_factory=dict)  # mapped ids

    def file(self, path: str) -> FileWalk:
        return FileWalk(path, self.problems)
