"""Argument checks shared by the command-line tools: dove-join, dove-controller, dove-lab.

Each is an argparse ``type=`` function: it returns the value in canonical form, or raises
ArgumentTypeError, which argparse reports as a usage error (exit status 2). They live here,
in the package the others depend on: ryu_dove and dove_lab import ovsdb_agent, never the
reverse.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable

from ovsdb_agent import contract


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address, written canonically (e.g. '2001:db8::1')."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from exc


def tep_address(text: str) -> str:
    """A tunnel endpoint: one canonical unicast address (the controller refuses others)."""
    address = ip_address(text)
    why = contract.tep_problem(address)
    if why is not None:
        raise argparse.ArgumentTypeError(f"not a usable TEP: {text!r}: {why}")
    return address


def hypervisor_name(text: str) -> str:
    why = contract.name_problem(text)
    if why is not None:
        raise argparse.ArgumentTypeError(f"not a hypervisor name: {text!r}: {why}")
    return text


def tcp_port(text: str) -> int:
    # isascii: str.isdigit() is true for digits int() refuses, such as '²'
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return int(text)


def whole_in(low: int, high: int) -> Callable[[str], int]:
    """A whole number within low..high, e.g. a limit or an OpenFlow timeout."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"not a whole number within {low}..{high}: "
                                             f"{text!r}")
        return int(text)
    return parse


def positive_number(text: str) -> float:
    """A number greater than 0, e.g. a timeout."""
    return _number(text, lambda value: value <= 0, "a positive number")


def seconds(text: str) -> float:
    """A duration in seconds; 0 allowed (e.g. no grace period)."""
    return _number(text, lambda value: value < 0, "a number of seconds")


def _number(text: str, refused: Callable[[float], bool], what: str) -> float:
    try:
        value: float | None = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or refused(value):  # no nan, no inf
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}")
    return value
