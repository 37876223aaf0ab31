"""dove-join's command line: joining needs the controller and the TEP, --leave takes neither."""

from __future__ import annotations

import pytest

from ovsdb_agent.join import parse_args


def test_leave_needs_neither_controller_nor_tep():
    args = parse_args(["--leave", "--db", "unix:/tmp/db.sock", "--bridge", "br-x"])
    assert (args.leave, args.db, args.bridge) == (True, "unix:/tmp/db.sock", "br-x")


def test_join_still_needs_both(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--tep-ip", "192.0.2.7"])
    assert exit_.value.code == 2
    assert "joining needs --controller (or --leave to leave the controller)" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit):
        parse_args([])
    assert "joining needs --controller and --tep-ip" in capsys.readouterr().err


def test_leave_refuses_join_options_rather_than_ignore_them(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--leave", "--controller", "203.0.113.1", "--ssl-ca", "ca.pem"])
    assert exit_.value.code == 2
    assert "--leave takes only --db and --bridge, not --controller, --ssl-ca" in (
        capsys.readouterr().err)


def test_tls_takes_all_three_files(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--controller", "203.0.113.1", "--tep-ip", "192.0.2.7", "--ssl-key", "k"])
    assert "TLS needs all of --ssl-key, --ssl-cert and --ssl-ca" in capsys.readouterr().err
    args = parse_args(["--controller", "203.0.113.1", "--tep-ip", "192.0.2.7"])
    assert (args.controller, args.tep_ip, args.leave) == ("203.0.113.1", "192.0.2.7", False)
