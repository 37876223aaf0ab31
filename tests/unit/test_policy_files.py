"""Whatever file a policy path names, the loader answers with a positioned problem: parser
crashes, special files, huge files (ryu_dove.policy.yamlmarks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryu_dove.cli.dovectl import main as dovectl
from ryu_dove.policy import ConfigError, load_policy, yamlmarks


def problems(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_policy([str(path)])
    return [str(p) for p in exc.value.problems]


def test_a_mapping_as_a_key_is_a_positioned_problem_not_a_parser_crash(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants:\n  a:\n? b: {c: 1}\n")
    assert problems(bad) == [f"{bad}:3:3: a key must be a plain value, not a mapping or a list"]


def test_a_fifo_is_refused_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    assert problems(fifo) == [f"{fifo}:1:1: cannot read: not a regular file"]


def test_a_device_is_refused(tmp_path) -> None:
    assert problems("/dev/zero") == ["/dev/zero:1:1: cannot read: not a regular file"]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(yamlmarks, "MAX_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text("tenants: {}\n" + "#" * 200 + "\n")
    assert problems(big) == [f"{big}:1:1: cannot read: 213 bytes, more than 100 allowed"]


def test_a_parser_bug_on_odd_input_is_still_a_problem(tmp_path, monkeypatch) -> None:
    class Broken:
        def compose(self, text: str) -> None:
            raise AssertionError("ruamel internal")

    monkeypatch.setattr(yamlmarks, "_yaml", Broken)
    path = tmp_path / "p.yaml"
    path.write_text("tenants: {}\n")
    assert problems(path) == [f"{path}:1:1: invalid YAML the parser cannot place: "
                              "AssertionError: ruamel internal"]


def test_dovectl_check_exits_2_for_any_bad_file(tmp_path, capsys) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    assert dovectl(["check", str(fifo), "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and "Traceback" not in err


# Pieces of policy YAML and of YAML's syntax, glued at random: mostly broken documents.
YAMLISH = st.lists(st.sampled_from(list("abt: -?{}[],\n'\"&*!|>#%@`0129.") + [
    "tenants:", "networks:", "vni: ", "subnet: ", "rules:", "allow:", "198.51.100.0/24",
    "  ", "\n  ", "acme", "web", "- {from: web, to: db, proto: tcp, port: 5432}"]),
    max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_any_text_is_a_policy_or_positioned_problems(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(text)
    try:
        load_policy([str(path)])
    except ConfigError as exc:
        assert exc.problems and all(str(p).startswith(f"{path}:") for p in exc.problems)
