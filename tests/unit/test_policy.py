"""Policy parsing: the example's meaning, and every error case in policies/invalid."""

from __future__ import annotations

import dataclasses
import random
import re
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from ryu_dove.policy import (
    ConfigError,
    Network,
    Policy,
    Problem,
    Rule,
    Tenant,
    Where,
    check_policy,
    load_policy,
)
from ryu_dove.policy.yamlmarks import load_yaml, mark, unknown_key_problem, value_mark

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
EXAMPLE = POLICIES / "example.yaml"
INVALID = POLICIES / "invalid"
EXPECT = re.compile(r"# expect: (\d+):(\d+): (.+)")


def rel(path: Path) -> str:
    """Paths as problems name them: relative, as given on the command line."""
    return str(path.relative_to(ROOT))


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture
def example() -> Policy:
    return load_policy([rel(EXAMPLE)])


# --- the example answers questions -------------------------------------------------


def test_example_loads(example: Policy) -> None:
    assert list(example.tenants) == ["acme", "globex"]
    assert [n.key for n in example.networks()] == ["acme/db", "acme/web", "globex/web"]
    assert example.sources == (rel(EXAMPLE),)


def test_gateway_defaults_to_first_host(example: Policy) -> None:
    web, db = example.network("acme/web"), example.network("acme/db")
    assert web is not None and db is not None
    assert web.gateway == ip_address("198.51.100.1")
    assert db.gateway == ip_address("198.51.100.65")
    assert db.subnet == ip_network("198.51.100.64/26")


def test_lookup_by_key_and_vni(example: Policy) -> None:
    assert example.by_vni(5002) == example.network("acme/db")
    assert example.by_vni(6001) == example.network("globex/web")
    assert example.by_vni(1) is None
    assert example.network("acme/nope") is None
    assert example.network("nobody/web") is None
    assert example.network("acme") is None


def test_allows_follows_rules_one_way(example: Policy) -> None:
    web, db = example.network("acme/web"), example.network("acme/db")
    assert web and db
    assert example.allows(web, db, "tcp", 5432)
    assert example.allows(web, db, "icmp", None)
    assert not example.allows(web, db, "tcp", 5433)
    assert not example.allows(web, db, "udp", 5432)
    assert not example.allows(db, web, "tcp", 5432)  # one-directional
    assert example.allows(db, db, "udp", 9999)  # same network: always


def test_tenants_are_isolated_even_with_overlapping_subnets(example: Policy) -> None:
    acme_web, globex_web = example.network("acme/web"), example.network("globex/web")
    assert acme_web and globex_web
    assert acme_web.subnet == globex_web.subnet
    assert not example.allows(acme_web, globex_web, "icmp", None)
    assert example.rules_between(acme_web, globex_web) == ()


def test_rules_between(example: Policy) -> None:
    web, db = example.network("acme/web"), example.network("acme/db")
    assert web and db
    rules = example.rules_between(web, db)
    assert [(r.proto, r.ports) for r in rules] == [("tcp", (5432, 5432)), ("icmp", None)]
    assert example.rules_between(db, web) == ()
    assert str(rules[0].where) == f"{rel(EXAMPLE)}:21:9"


def test_network_contains(example: Policy) -> None:
    web = example.network("acme/web")
    assert web
    assert web.contains("198.51.100.63")
    assert not web.contains(ip_address("198.51.100.64"))
    assert not web.contains("2001:db8::1")


@pytest.mark.parametrize(
    ("proto", "ports", "asked", "port", "expected"),
    [
        ("any", None, "udp", 53, True),
        ("tcp", None, "tcp", 1, True),
        ("tcp", (8000, 8080), "tcp", 8080, True),
        ("tcp", (8000, 8080), "tcp", 8081, False),
        ("tcp", (8000, 8080), "tcp", None, False),
        ("udp", (53, 53), "tcp", 53, False),
        ("icmp", None, "icmp", None, True),
    ],
)
def test_rule_matches(proto: str, ports: tuple[int, int] | None, asked: str,
                      port: int | None, expected: bool) -> None:
    rule = Rule("t", "a", "b", proto, ports, Where("f", 1, 1))  # type: ignore[arg-type]
    assert rule.matches(asked, port) is expected


def test_ipv6_and_ranges() -> None:
    policy = load_policy(["policies/examples/ipv6.yaml"])
    front, back = policy.network("initech/frontend"), policy.network("initech/backend")
    assert front and back
    assert front.gateway == ip_address("2001:db8:7001::1")
    assert policy.allows(front, back, "tcp", 8000)
    assert policy.allows(front, back, "udp", 53)
    assert not policy.allows(front, back, "tcp", 7999)
    assert not policy.allows(front, back, "icmp", None)


# --- immutability and equality ---------------------------------------------------------


def test_policy_is_immutable(example: Policy) -> None:
    web = example.network("acme/web")
    assert web
    with pytest.raises(dataclasses.FrozenInstanceError):
        web.vni = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.tenants = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        example.tenants["evil"] = example.tenants["acme"]  # type: ignore[index]
    with pytest.raises(TypeError):
        example.tenants["acme"].networks["x"] = web  # type: ignore[index]
    assert isinstance(example.tenants["acme"].rules, tuple)


def test_model_copies_caller_dicts() -> None:
    networks: dict[str, Network] = {}
    tenant = Tenant("t", networks, (), Where("f", 1, 1))
    networks["late"] = None  # type: ignore[assignment]
    assert dict(tenant.networks) == {}


def test_positions_do_not_affect_equality(tmp_path: Path, example: Policy) -> None:
    moved = tmp_path / "moved.yaml"
    moved.write_text("\n\n# shifted down\n" + EXAMPLE.read_text())
    other = load_policy([str(moved)])
    assert other == example
    assert hash(other) == hash(example)
    assert other.network("acme/web").where != example.network("acme/web").where  # type: ignore[union-attr]


def test_content_changes_affect_equality(tmp_path: Path, example: Policy) -> None:
    changed = tmp_path / "changed.yaml"
    changed.write_text(EXAMPLE.read_text().replace("port: 5432", "port: 5433"))
    assert load_policy([str(changed)]) != example


# --- invalid policies ---------------------------------------------------------------


def invalid_cases() -> list[Path]:
    return sorted(p for p in INVALID.iterdir() if p.is_dir() or p.suffix in (".yaml", ".yml"))


def expectations(case: Path) -> list[tuple[str, int, int, str]]:
    """(file, line, col, text) from the leading '# expect:' lines of the case's files."""
    files = sorted(case.glob("*.y*ml")) if case.is_dir() else [case]
    found = []
    for path in files:
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if match := EXPECT.fullmatch(line):
                found.append((rel(path), int(match[1]), int(match[2]), match[3]))
    return found


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda p: p.name)
def test_invalid_case_reports_each_expected_problem(case: Path) -> None:
    expected = expectations(case)
    assert expected, f"{case} has no '# expect: LINE:COL: message' line"
    with pytest.raises(ConfigError) as caught:
        load_policy([rel(case)])
    problems = caught.value.problems
    for file, line, col, text in expected:
        hits = [p for p in problems if (p.file, p.line, p.col) == (file, line, col)
                and text in p.message]
        assert hits, f"no problem {file}:{line}:{col}: ...{text}... in:\n{caught.value}"


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda p: p.name)
def test_invalid_case_reports_nothing_unexpected(case: Path) -> None:
    """Every problem is announced by an expect line, so no noise slips in."""
    expected = {(f, line, col) for f, line, col, _ in expectations(case)}
    problems = check_policy([rel(case)])
    assert {(p.file, p.line, p.col) for p in problems} <= expected, problems


def test_all_problems_of_a_file_in_one_run() -> None:
    problems = check_policy(["policies/invalid/many_errors.yaml"])
    assert len(problems) >= 10
    assert problems == sorted(problems)


def test_config_error_lists_problems_one_per_line() -> None:
    error = ConfigError([Problem("b", 2, 1, "two"), Problem("a", 9, 3, "one")])
    assert str(error) == "a:9:3: one\nb:2:1: two"


# --- files and directories ------------------------------------------------------------


def test_directory_is_merged_in_name_order() -> None:
    policy = load_policy(["policies/examples/split"])
    assert policy.sources == (
        "policies/examples/split/10-acme.yaml",
        "policies/examples/split/20-globex.yaml",
    )
    assert list(policy.tenants) == ["acme", "globex"]
    app, api = policy.network("globex/app"), policy.network("globex/api")
    assert app and api and policy.allows(app, api, "tcp", 443)


def test_several_paths_merge(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yml"
    extra.write_text("tenants:\n  initech:\n    networks:\n"
                     "      lan: {vni: 9, subnet: 10.9.0.0/24}\n")
    policy = load_policy([rel(EXAMPLE), str(extra)])
    assert list(policy.tenants) == ["acme", "globex", "initech"]


def test_tenant_defined_twice_is_reported_at_the_second(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("tenants:\n  acme:\n    networks: {}\n")
    (tmp_path / "b.yml").write_text("# again\ntenants:\n  acme: {}\n")
    problems = check_policy([str(tmp_path)])
    assert [(p.file, p.line, p.col) for p in problems] == [(str(tmp_path / "b.yml"), 3, 3)]
    assert f"already defined at {tmp_path / 'a.yaml'}:2:3" in problems[0].message


def test_same_file_twice_is_read_once() -> None:
    policy = load_policy(["policies/examples/split", "policies/examples/split/10-acme.yaml"])
    assert len(policy.sources) == 2


def test_missing_file_and_empty_directory(tmp_path: Path) -> None:
    problems = check_policy([str(tmp_path / "nope.yaml"), str(tmp_path)])
    assert [str(p) for p in problems] == [
        f"{tmp_path}:1:1: no *.yaml or *.yml files in directory",
        f"{tmp_path / 'nope.yaml'}:1:1: cannot read: No such file or directory",
    ]


def test_string_path_is_one_path() -> None:
    assert load_policy(rel(EXAMPLE)) == load_policy([rel(EXAMPLE)])


def test_no_paths_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        load_policy([])


# --- robustness: whatever the input, problems and never an exception ----------------------


def test_mangled_examples_never_raise_anything_but_config_error(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    rng = random.Random(7)
    junk = ["", ":", "-", "{", "}", "[", "'", "\t", "\n", " ", "!!int x", "&a", "*a", "0", "/"]
    for attempt in range(300):
        at = rng.randrange(len(text))
        mangled = text[:at] + rng.choice(junk) + text[at + rng.randrange(4):]
        path = tmp_path / f"m{attempt}.yaml"
        path.write_text(mangled)
        try:
            load_policy([str(path)])
        except ConfigError as exc:
            assert all(p.line >= 1 and p.col >= 1 for p in exc.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!bool x\n", "cannot read value"),
        ("a: 2001-13-45\n", "cannot read value"),
        ("a: \x07\n", "special characters"),
        ("---\na: 1\n---\nb: 2\n", "YAML syntax"),
        ("a: *nope\n", "undefined alias"),
    ],
)
def test_yaml_oddities_become_problems(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    data, problems = load_yaml(str(path))
    assert data is None
    assert len(problems) == 1 and message in problems[0].message
    assert problems[0].line >= 1


def test_yaml_tags(tmp_path: Path) -> None:
    path = tmp_path / "tags.yaml"
    path.write_text("tenants:\n  t:\n    networks:\n"
                    "      n: {vni: !foo 1, subnet: !!str 10.0.0.0/24}\n")
    problems = check_policy([str(path)])
    assert [str(p) for p in problems] == [
        f"{path}:4:16: 'vni' must be an integer, got a value tagged '!foo'"]


def test_unreadable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"tenants: {caf\xe9: {}}\n")
    _, problems = load_yaml(str(path))
    assert problems[0].message.startswith("cannot read: ")


# --- yamlmarks helpers -----------------------------------------------------------------


def test_marks_of_keys_items_and_values(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("top:\n  key: value\n  list: [a, {b: 1}]\n  empty:\n")
    data, problems = load_yaml(str(path))
    assert problems == [] and isinstance(data, dict)
    top = data["top"]
    assert mark(data, "top") == (1, 1)
    assert mark(top) == (2, 3)
    assert mark(top, "key") == (2, 3)
    assert value_mark(top, "key") == (2, 8)
    assert mark(top["list"], 1) == (3, 13)
    assert value_mark(top, "empty") == (4, 3)  # null: its key's place
    assert mark(top, "absent") == (2, 3)
    assert mark("plain") == (1, 1)


def test_duplicate_keys_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("a: 1\nb: {c: 1, c: 2}\na: 3\nd: [{e: 1, e: 2}]\n")
    _, problems = load_yaml(str(path))
    assert [str(p) for p in problems] == [
        f"{path}:2:11: duplicate key 'c' (first at line 2)",
        f"{path}:3:1: duplicate key 'a' (first at line 1)",
        f"{path}:4:12: duplicate key 'e' (first at line 4)",
    ]


def test_unknown_key_problem_suggests_or_lists(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("netwroks: 1\nzzz: 2\n")
    data, _ = load_yaml(str(path))
    allowed = ("networks", "policy")
    near = unknown_key_problem(str(path), data, "netwroks", allowed)
    far = unknown_key_problem(str(path), data, "zzz", allowed)
    assert str(near) == f"{path}:1:1: unknown key 'netwroks', did you mean 'networks'?"
    assert str(far) == f"{path}:2:1: unknown key 'zzz' (allowed: networks, policy)"
