"""dovectl: operator tool for ryu_dove.

    dovectl check PATH...   validate policy files/directories offline
    dovectl show WHAT       endpoints, hypervisors, tunnels or refused bindings, from the
                            controller's API (docs/api.md)
    dovectl diff OLD NEW    the paths a policy change opens and closes, and the flows each
                            hypervisor would add and delete (with --api) or each tenant's
                            routing flows (without), before anything is applied

Exit status: 0 ok, 1 the controller's API could not be reached or refused the request,
2 invalid input (bad policy or bad arguments).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.resources
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from ovsdb_agent.peerlog import printable
from ryu_dove.cli import policy_diff
from ryu_dove.northbound.resources import COLLECTIONS, Collection
from ryu_dove.policy import ConfigError, Policy, load_policy

EXIT_OK = 0
EXIT_FAILED = 1  # the controller's API could not be reached or refused
EXIT_INVALID = 2  # same as argparse's usage errors: the input was wrong

DEFAULT_API = "http://127.0.0.1:8080"
TIMEOUT_S = 5.0
_SHOWN = {c.name: c for c in COLLECTIONS}

Command = Callable[[argparse.Namespace], int]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _summary(policy: Policy) -> str:
    networks = sum(len(t.networks) for t in policy.tenants.values())
    rules = sum(len(t.rules) for t in policy.tenants.values())
    ports = sum(len(t.ports) for t in policy.tenants.values())
    counts = ", ".join([
        _plural(len(policy.tenants), "tenant"),
        _plural(networks, "network"),
        _plural(rules, "rule"),
        *([_plural(ports, "port mapping")] if ports else []),
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


class _ShowError(Exception):
    """The controller's API could not be asked, or refused; the message says why."""


def _unreachable(api: str, reason: object) -> _ShowError:
    why = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
    return _ShowError(
        f"cannot reach the controller API at {api}: {why}\n"
        "  (give its address with --api URL or DOVE_API; in the lab, `dove-lab status` "
        "shows it)")


def _http_error(api: str, exc: urllib.error.HTTPError) -> _ShowError:
    try:
        message = json.loads(exc.read())["error"]
    except (OSError, ValueError, TypeError, KeyError):  # not our API's JSON error
        message = exc.reason
    return _ShowError(f"the controller API at {api} answered {exc.code}: {message}")


# The API is on the management network and needs no proxy: ignore http_proxy and friends.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_list(api: str, path: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
    url = f"{api}{path}" + (f"?{urlencode(query)}" if query else "")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise _http_error(api, exc) from None
    except urllib.error.URLError as exc:
        raise _unreachable(api, exc.reason) from None
    except (OSError, http.client.HTTPException) as exc:  # timed out or cut while reading
        raise _unreachable(api, exc) from None
    try:
        items = json.loads(body)
    except ValueError:
        raise _ShowError(f"{url} did not answer JSON: is {api} the controller API?") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _ShowError(f"{url} did not answer a list of objects: is {api} the controller API?")
    return items


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    return printable(value)  # names and ids come from hypervisors: no escapes to the terminal


def _table(items: list[dict[str, Any]], fields: Sequence[str]) -> str:
    rows = [[f.upper() for f in fields], *([_cell(item.get(f)) for f in fields] for item in items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(fields))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _api_url(args: argparse.Namespace) -> str:
    return str(args.api or os.environ.get("DOVE_API") or DEFAULT_API).rstrip("/")


def _filters(args: argparse.Namespace, collection: Collection) -> dict[str, str]:
    given = {name: value for name in ("network", "hypervisor")
             if (value := getattr(args, name)) is not None}
    for name in given:
        if name not in collection.filters:
            raise ValueError(f"--{name} does not apply to {collection.name}")
    return given


def _show(args: argparse.Namespace) -> int:
    collection = _SHOWN[args.what]
    api = _api_url(args)
    try:
        query = _filters(args, collection)
        if urlsplit(api).scheme not in ("http", "https"):
            raise ValueError(f"the API address must be an http:// URL, not {api!r}")
    except ValueError as exc:
        print(f"dovectl show: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        items = _get_list(api, collection.path, query)
    except _ShowError as exc:
        print(f"dovectl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(items, indent=2) if args.json else _table(items, collection.fields))
    return EXIT_OK


def _add_show(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "show",
        help="show what the running controller knows",
        description="Show endpoints, hypervisors, tunnels or refused bindings as the running "
                    "controller sees them, from its read-only API (docs/api.md).",
    )
    parser.add_argument("what", choices=list(_SHOWN), help="what to show")
    parser.add_argument("--api", metavar="URL",
                        help=f"the controller API (default: $DOVE_API, else {DEFAULT_API})")
    parser.add_argument("--json", action="store_true",
                        help="print the JSON list as received instead of a table")
    parser.add_argument("--network", metavar="TENANT/NETWORK",
                        help="only this network's endpoints")
    parser.add_argument("--hypervisor", metavar="NAME", help="only what is on this hypervisor")
    parser.set_defaults(run=_show)


def _diff(args: argparse.Namespace) -> int:
    try:
        old, new = load_policy(args.old), load_policy(args.new)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    if args.api:
        try:
            lists = [_get_list(args.api, f"/v1/{name}", {})
                     for name in ("hypervisors", "tunnels", "endpoints")]
        except _ShowError as exc:
            print(f"dovectl diff: {exc}", file=sys.stderr)
            return EXIT_FAILED
        try:
            directory = policy_diff.directory_from_api(*lists)
        except (KeyError, TypeError, ValueError) as exc:
            print(f"dovectl diff: {args.api} answered lists without the fields of docs/api.md "
                  f"({type(exc).__name__}: {printable(str(exc))[:200]})", file=sys.stderr)
            return EXIT_FAILED
        deltas = policy_diff.hypervisor_flow_deltas(old, new, directory)
    else:
        deltas = policy_diff.tenant_flow_deltas(old, new)
    print("\n".join(policy_diff.report(old, new, deltas)))
    return EXIT_OK


def _add_diff(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diff", help="what a policy change would open, close and reprogram",
        description="Compare two policies before applying one: the (tenant, from, to, proto, "
                    "port) paths that open and close, networks that change, and the flows "
                    "each hypervisor of a running controller would add and delete (--api), "
                    "or each tenant's routing flows (from the policies alone).")
    parser.add_argument("old", nargs=1, metavar="OLD", help="the policy in force (file or dir)")
    parser.add_argument("new", nargs=1, metavar="NEW", help="the policy to compare (file or dir)")
    parser.add_argument("--api", metavar="URL",
                        help="a running controller's API: count flows per hypervisor on its "
                             "directory")
    parser.set_defaults(run=_diff)


def _examples(args: argparse.Namespace) -> int:
    print(importlib.resources.files("ryu_dove") / "policies")
    return EXIT_OK


def _add_examples(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "examples", help="where the installed example policies and schema are",
        description="Print the directory of the example policies (example.yaml, examples/), "
                    "the invalid ones the tests use (invalid/) and the policy JSON Schema "
                    "(schema.json) that come with the package, e.g. "
                    "`dovectl check $(dovectl examples)/example.yaml`.")
    parser.set_defaults(run=_examples)


# One entry per subcommand: a function that adds its parser and sets `run`.
_COMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_check,
    _add_show,
    _add_diff,
    _add_examples,
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
