"""dove-lab partition/heal and del-hypervisor: command lines, the nftables rules, the words."""

from __future__ import annotations

import pytest

from dove_lab import cli, partitions
from dove_lab.controller_watch import OFP_PORT
from dove_lab.state import HypervisorState
from ovsdb_agent import contract

CTL = "203.0.113.1"


@pytest.mark.parametrize("command", ["partition", "heal"])
def test_partition_and_heal_take_a_hypervisor_and_a_channel_defaulting_to_all(command):
    args = cli.build_parser().parse_args([command, "hv1"])
    assert (args.fn, args.hypervisor, args.channel, args.name) == (
        cli.cmd_partition, "hv1", "all", "dove")
    args = cli.build_parser().parse_args([command, "hv2", "--channel", "ovsdb", "--name", "t1"])
    assert (args.hypervisor, args.channel, args.name) == ("hv2", "ovsdb", "t1")


def test_partition_refuses_an_unknown_channel(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["partition", "hv1", "--channel", "http"])
    assert exit_.value.code == 2
    assert "invalid choice: 'http'" in capsys.readouterr().err


def test_del_hypervisor_parses():
    args = cli.build_parser().parse_args(["del-hypervisor", "hv3", "--name", "t1"])
    assert (args.fn, args.hypervisor, args.name) == (cli.cmd_del_hv, "hv3", "t1")


def test_no_rules_for_the_link_and_none_for_nothing():
    assert partitions.nft_rules([], CTL) == []
    assert partitions.nft_rules(["all"], CTL) == []


def test_a_channel_is_dropped_both_ways_between_namespace_and_controller():
    assert partitions.nft_rules(["openflow"], CTL) == [
        ("input", f'ip saddr {CTL} tcp sport {OFP_PORT} drop comment "dove-lab openflow"'),
        ("output", f'ip daddr {CTL} tcp dport {OFP_PORT} drop comment "dove-lab openflow"'),
    ]
    port = contract.OVSDB_PORT
    assert partitions.nft_rules(["all", "ovsdb"], "2001:db8::1") == [
        ("input", f'ip6 saddr 2001:db8::1 tcp sport {port} drop comment "dove-lab ovsdb"'),
        ("output", f'ip6 daddr 2001:db8::1 tcp dport {port} drop comment "dove-lab ovsdb"'),
    ]


def test_the_script_replaces_the_whole_table_in_one_go():
    script = partitions.nft_script(["openflow", "ovsdb"], CTL)
    assert script == (
        "add table inet dove_lab\n"
        "flush table inet dove_lab\n"
        "table inet dove_lab {\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        f'\t\tip saddr {CTL} tcp sport 6653 drop comment "dove-lab openflow"\n'
        f'\t\tip saddr {CTL} tcp sport 6640 drop comment "dove-lab ovsdb"\n'
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy accept;\n"
        f'\t\tip daddr {CTL} tcp dport 6653 drop comment "dove-lab openflow"\n'
        f'\t\tip daddr {CTL} tcp dport 6640 drop comment "dove-lab ovsdb"\n'
        "\t}\n"
        "}\n")


def test_with_no_channel_cut_the_script_removes_the_table_even_if_absent():
    expected = "add table inet dove_lab\ndelete table inet dove_lab\n"
    assert partitions.nft_script([], CTL) == expected
    assert partitions.nft_script(["all"], CTL) == expected


def test_channels_are_listed_in_one_order():
    assert partitions.ordered({"ovsdb", "all", "openflow"}) == ["all", "openflow", "ovsdb"]


def test_messages_say_what_was_done_or_why_nothing_was():
    assert partitions.describe("hv1", "partition", "openflow", ["openflow"], ["openflow"]) == (
        "hv1: cut openflow (cut now: openflow)")
    assert partitions.describe("hv1", "partition", "all", [], ["all"]) == (
        "hv1: all is cut already; nothing to do (cut now: all)")
    assert partitions.describe("hv1", "heal", "all", ["all"], ["ovsdb"]) == (
        "hv1: healed all (cut now: ovsdb)")
    assert partitions.describe("hv1", "heal", "ovsdb", [], ["openflow"]) == (
        "hv1: ovsdb is not cut; nothing to heal (cut now: openflow)")


def test_state_written_before_partitions_existed_loads():
    old = {"name": "hv1", "index": 1, "netns": "dove-t.hv1", "tep_ip": "192.0.2.1",
           "mgmt_ip": "203.0.113.2", "ovs_dir": "/run/dove-lab/t/hv/hv1"}
    assert HypervisorState(**old).partitioned == []
