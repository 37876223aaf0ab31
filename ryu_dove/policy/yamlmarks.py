"""YAML loading that keeps positions, so config errors can say file:line:col.

Generic: the policy loader and the lab's topology parser both build on it.
Documents are loaded with ruamel.yaml's round-trip loader, whose CommentedMap
and CommentedSeq remember where each key and item came from (``.lc``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

__all__ = [
    "ConfigError",
    "Problem",
    "did_you_mean",
    "load_yaml",
    "mark",
    "unknown_key_problem",
    "value_mark",
]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a config file; line and col are 1-based."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ConfigError(Exception):
    """A config was rejected; carries every problem found, sorted by place."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


_STR_TAG = "tag:yaml.org,2002:str"


class _Constructor(RoundTripConstructor):
    """Turns any failure to build a value into a ConstructorError at its node.

    ruamel raises bare ValueError/KeyError/IndexError for values such as
    ``!!bool x`` or ``2001-13-45``; those would otherwise lose their position.
    """

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
        except YAMLError:
            raise
        except Exception as exc:  # ruamel's own code on untrusted input: keep the place
            raise ConstructorError(
                None, None, f"cannot read value: {exc}", node.start_mark
            ) from exc
        # Round-trip mode keeps an explicit '!!str' as a TaggedScalar; it is just a string.
        if isinstance(value, TaggedScalar) and str(value.tag) == _STR_TAG:
            return str(value.value)
        return value


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _Constructor
    # Duplicates are found on the node tree instead, so that all are reported.
    yaml.allow_duplicate_keys = True
    return yaml


def load_yaml(path: str) -> tuple[object, list[Problem]]:
    """Load one YAML document; return (data, problems).

    data is None when the file is empty or could not be parsed. Problems cover
    unreadable files, syntax errors and every duplicate key; callers validate
    the shape themselves.
    """
    try:
        with open(path, encoding="utf-8-sig") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [Problem(path, 1, 1, f"cannot read: {reason}")]
    try:
        node = _yaml().compose(text)
        duplicates = sorted(_duplicate_keys(path, node))
        return _yaml().load(text), duplicates
    except MarkedYAMLError as exc:
        return None, [_marked_problem(path, exc)]
    except ReaderError as exc:
        line, col = _offset_to_mark(text, exc.position)
        return None, [Problem(path, line, col, f"{exc.reason}: character #x{exc.character:04x}")]
    except YAMLError as exc:
        return None, [Problem(path, 1, 1, f"invalid YAML: {exc}")]
    except RecursionError:
        return None, [Problem(path, 1, 1, "invalid YAML: nested too deeply")]


def _marked_problem(path: str, exc: MarkedYAMLError) -> Problem:
    where = exc.problem_mark or exc.context_mark
    line, col = (where.line + 1, where.column + 1) if where else (1, 1)
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        ctx = exc.context_mark
        at = f" at line {ctx.line + 1}, col {ctx.column + 1}" if ctx else ""
        message = f"{exc.problem} ({exc.context}{at})"
    return Problem(path, line, col, f"YAML syntax: {message}")


def _offset_to_mark(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _duplicate_keys(path: str, root: Node | None) -> Iterator[Problem]:
    """Yield a problem at every repeated scalar key, walking the node tree."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:  # aliases share nodes, may recurse
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            yield from _duplicates_in(path, node)
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _duplicates_in(path: str, node: MappingNode) -> Iterator[Problem]:
    first: dict[tuple[str, str], int] = {}
    for key, _value in node.value:
        if not isinstance(key, ScalarNode) or key.value == "<<":  # merge keys may repeat
            continue
        ident = (str(key.tag), key.value)
        line = key.start_mark.line + 1
        if ident in first:
            yield Problem(
                path, line, key.start_mark.column + 1,
                f"duplicate key '{key.value}' (first at line {first[ident]})",
            )
        else:
            first[ident] = line


def _lc_pos(pos: tuple[int, int]) -> tuple[int, int]:
    return pos[0] + 1, pos[1] + 1


def _own_mark(node: object) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    return lc.line + 1, lc.col + 1


def mark(node: object, key: object = None) -> tuple[int, int]:
    """(line, col) of a mapping key, of a sequence item, or of the node itself.

    Falls back to the node's own position when the key has no recorded place
    (e.g. it came from a ``<<`` merge) and to (1, 1) for plain Python values.
    """
    if key is None:
        return _own_mark(node)
    lc = getattr(node, "lc", None)
    try:
        if isinstance(node, dict):
            return _lc_pos(lc.key(key))  # type: ignore[union-attr]
        if isinstance(node, list):
            return _lc_pos(lc.item(key))  # type: ignore[union-attr]
    except (AttributeError, KeyError, IndexError, TypeError):
        pass
    return _own_mark(node)


def value_mark(node: object, key: object) -> tuple[int, int]:
    """(line, col) of the value under ``key`` (a mapping key or sequence index).

    An empty value (YAML null) has no place of its own; its key's is used.
    """
    if isinstance(node, list):
        return mark(node, key)
    if not isinstance(node, dict) or node.get(key) is None:
        return mark(node, key)
    try:
        return _lc_pos(node.lc.value(key))  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return mark(node, key)


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)'-style hint for ``word``, or '' when nothing is close."""
    text, options = str(word), sorted(choices)
    folded = [c for c in options if c.lower() == text.lower()]
    close = folded or difflib.get_close_matches(text, options, n=1, cutoff=0.6)
    return f", did you mean '{close[0]}'?" if close else ""


def unknown_key_problem(file: str, node: object, key: object, allowed: Iterable[str]) -> Problem:
    """Problem at ``key`` in ``node``: suggests the closest allowed key, else lists them."""
    options = sorted(allowed)
    hint = did_you_mean(key, options) or f" (allowed: {', '.join(options)})"
    line, col = mark(node, key)
    return Problem(file, line, col, f"unknown key '{key}'{hint}")
