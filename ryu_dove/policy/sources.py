"""Which files a policy is read from: files as given, directories as their policy files."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ryu_dove.policy.yamlmarks import Problem

POLICY_SUFFIXES = (".yaml", ".yml")


def expand(paths: Sequence[str], problems: list[Problem]) -> list[str]:
    """Files to read, in order: directories give their policy files, sorted.

    A directory that cannot be listed or holds no policy file is reported in ``problems``.
    """
    files: list[str] = []
    for path in paths:
        files.extend(_dir_files(path, problems) if os.path.isdir(path) else [path])
    seen: set[str] = set()
    unique = []
    for path in files:  # the same file twice (dir and file) is read once
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _dir_files(path: str, problems: list[Problem]) -> list[str]:
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        problems.append(Problem(path, 1, 1, f"cannot read: {exc.strerror}"))
        return []
    files = [
        os.path.join(path, name) for name in names
        if name.endswith(POLICY_SUFFIXES) and not name.startswith(".")
        and not os.path.isdir(os.path.join(path, name))
    ]
    if not files:
        problems.append(Problem(path, 1, 1, "no *.yaml or *.yml files in directory"))
    return files
