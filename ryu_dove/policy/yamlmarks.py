"""YAML loading that keeps positions, so config errors can say file:line:col.

Generic: the policy loader and the lab's topology parser both build on it.
Documents are loaded with ruamel.yaml's round-trip loader, whose CommentedMap
and CommentedSeq remember where each key and item came from (``.lc``).
"""

from __future__ import annotations

import difflib
import os
import stat
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


MAX_BYTES = 16 << 20  # a policy file larger than this is refused, not read
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
    text, problem = _read(path)
    if text is None:
        return None, [Problem(path, 1, 1, problem)]
    try:
        node = _yaml().compose(text)
        problems = sorted(_duplicate_keys(path, node))
        if any(p.message.startswith("a key must be") for p in problems):
            return None, problems  # the parser cannot build such a mapping
        return _yaml().load(text), problems
    except MarkedYAMLError as exc:
        return None, [_marked_problem(path, exc)]
    except ReaderError as exc:
        line, col = _offset_to_mark(text, exc.position)
        return None, [Problem(path, line, col, f"{exc.reason}: character #x{exc.character:04x}")]
    except YAMLError as exc:
        return None, [Problem(path, 1, 1, f"invalid YAML: {exc}")]
    except RecursionError:
        return None, [Problem(path, 1, 1, "invalid YAML: nested too deeply")]
    except Exception as exc:  # the parser's own bugs on odd input (AssertionError, TypeError)
        return None, [Problem(path, 1, 1, f"invalid YAML the parser cannot place: "
                                          f"{type(exc).__name__}: {exc}")]


def _read(path: str) -> tuple[str | None, str]:
    """The file's text, or None and why not. Only regular files, opened without blocking (a
    FIFO would stall a reload forever) and at most MAX_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    with os.fdopen(fd, "rb") as stream:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "cannot read: not a regular file"
        if st.st_size > MAX_BYTES:
            return None, f"cannot read: {st.st_size} bytes, more than {MAX_BYTES} allowed"
        try:
            data = stream.read(MAX_BYTES + 1)
        except OSError as exc:
            return None, f"cannot read: {exc.strerror or exc}"
    if len(data) > MAX_BYTES:
        return None, f"cannot read: more than {MAX_BYTES} bytes"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        return None, f"cannot read: {exc}"


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
        if not isinstance(key, ScalarNode):  # "? {a: 1}": no policy key is a mapping or list
            mark = key.start_mark
            yield Problem(path, mark.line + 1, mark.column + 1,
                          "a key must be a plain value, not a mapping or a list")
            continue
        if key.value == "<<":  # merge keys may repeat
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
