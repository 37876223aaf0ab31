"""dovectl: operator tool for ryu_dove.

    dovectl check PATH...   validate policy files/directories offline

Exit status: 0 ok, 2 invalid input (bad policy or bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ryu_dove.policy import ConfigError, Policy, load_policy

EXIT_OK = 0
EXIT_INVALID = 2  # same as argparse's usage errors: the input was wrong

Command = Callable[[argparse.Namespace], int]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _summary(policy: Policy) -> str:
    networks = sum(len(t.networks) for t in policy.tenants.values())
    rules = sum(len(t.rules) for t in policy.tenants.values())
    counts = ", ".join([
        _plural(len(policy.tenants), "tenant"),
        _plural(networks, "network"),
        _plural(rules, "rule"),
    ])
    return f"ok: {counts} ({', '.join(policy.sources)})"


def _check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.paths)
    except ConfigError as exc:
        for problem in exc.problems:  # already sorted by file, line, col
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    print(_summary(policy))
    return EXIT_OK


def _add_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate policy files",
        description="Validate policy YAML files and directories (merged as one policy). "
                    "Prints every problem as file:line:col: message.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a policy file, or a directory of *.yaml/*.yml files")
    parser.set_defaults(run=_check)


# One entry per subcommand: a function that adds its parser and sets `run`.
_COMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_check,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dovectl", description="ryu_dove operator tool")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
