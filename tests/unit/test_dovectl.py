"""dovectl check: exit codes and output, in-process and as a real command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ryu_dove.cli.dovectl import main

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_LINE = re.compile(r"[^:\n]+:\d+:\d+: \S.*")


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ryu_dove.cli.dovectl", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_check_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "policies/example.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 2 tenants, 3 networks, 2 rules (policies/example.yaml)\n"
    assert err == ""


def test_check_directory_lists_its_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "policies/examples/split"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 tenants, 5 networks, 2 rules (")
    assert "split/10-acme.yaml, policies/examples/split/20-globex.yaml)" in out


def test_check_invalid_prints_sorted_problems(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "policies/invalid/many_errors.yaml",
                 "policies/invalid/bad_proto.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 13  # 10 + 2 + acme defined in both files
    assert all(PROBLEM_LINE.fullmatch(line) for line in lines), lines
    keys = [(f, int(line), int(col)) for f, line, col, _ in (x.split(":", 3) for x in lines)]
    assert keys == sorted(keys)
    assert lines[0].startswith("policies/invalid/bad_proto.yaml:4:3: tenant 'acme' is already")
    assert lines[1].startswith("policies/invalid/bad_proto.yaml:9:43: proto 'TCP'")


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "no/such.yaml"]) == 2
    assert capsys.readouterr().err == "no/such.yaml:1:1: cannot read: No such file or directory\n"


@pytest.mark.parametrize("argv", [[], ["check"], ["frobnicate"], ["check", "--bogus", "x"]])
def test_bad_arguments_exit_2_with_usage(argv: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: dovectl" in capsys.readouterr().err


def test_subprocess_valid() -> None:
    done = run_cli("check", "policies/example.yaml", "policies/examples/ipv6.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 3 tenants, 6 networks, 7 rules (")
    assert done.stderr == ""


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "policies/invalid").iterdir()))
def test_subprocess_invalid(path: str) -> None:
    done = run_cli("check", f"policies/invalid/{path}")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(PROBLEM_LINE.fullmatch(line) for line in lines), lines


def test_subprocess_missing_file_and_bad_args() -> None:
    missing = run_cli("check", "nope.yaml")
    assert (missing.returncode, missing.stderr) == (
        2, "nope.yaml:1:1: cannot read: No such file or directory\n")
    bad = run_cli("check")
    assert bad.returncode == 2
    assert "usage: dovectl check" in bad.stderr and "Traceback" not in bad.stderr
