"""The argument checks every command-line tool shares (ovsdb_agent.cli_args)."""

from __future__ import annotations

import argparse

import pytest

from ovsdb_agent import cli_args


def test_addresses_come_back_canonical() -> None:
    assert cli_args.ip_address("2001:DB8:0::1") == "2001:db8::1"
    assert cli_args.ip_address("192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize("text", ["", "192.0.2.256", "0xc0.0.2.1", "192.0.2.1 ", "host"])
def test_a_bad_address_is_refused_by_its_text(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not an IP address"):
        cli_args.ip_address(text)


@pytest.mark.parametrize("text", ["0", "65536", "-1", "²", "6653x", " 6653", ""])
def test_a_bad_port_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"not a TCP port \(1-65535\)"):
        cli_args.tcp_port(text)


def test_ports_at_the_edges_pass() -> None:
    assert cli_args.tcp_port("1") == 1 and cli_args.tcp_port("65535") == 65535


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "x", ""])
def test_seconds_must_be_a_finite_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a number of seconds"):
        cli_args.seconds(text)


@pytest.mark.parametrize("text", ["nan", "inf", "0", "-0.5"])
def test_a_positive_number_is_finite_and_above_zero(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a positive number"):
        cli_args.positive_number(text)


def test_zero_seconds_is_a_valid_duration() -> None:
    assert cli_args.seconds("0") == 0.0 and cli_args.positive_number("2.5") == 2.5


@pytest.mark.parametrize("text", ["127.0.0.1", "224.0.0.1", "0.0.0.0", "::ffff:192.0.2.1"])
def test_a_tep_must_be_a_reachable_unicast_address(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a usable TEP"):
        cli_args.tep_address(text)


def test_a_tep_comes_back_canonical() -> None:
    assert cli_args.tep_address("2001:DB8::7") == "2001:db8::7"


@pytest.mark.parametrize("text", ["", "-x", "a b", "x" * 64, "hv\n1"])
def test_a_hypervisor_name_is_of_the_safe_charset(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a hypervisor name"):
        cli_args.hypervisor_name(text)
