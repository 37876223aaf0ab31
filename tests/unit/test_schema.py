"""policies/schema.json (for editors) agrees with the loader (the real check)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ryu_dove.policy import loader, model
from ryu_dove.policy.yamlmarks import load_yaml

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
SCHEMA = json.loads((POLICIES / "schema.json").read_text())
# "# schema: valid" marks an invalid file whose only errors are beyond the
# schema (duplicate VNI, overlap, ...); "# schema: n/a" one that is not data.
MARKER = re.compile(r"# schema: (valid|invalid|n/a)\b")


def validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    return cls(SCHEMA)


def data_of(path: Path) -> Any:
    data, problems = load_yaml(str(path))
    assert problems == [], problems
    return data


def marker(path: Path) -> str:
    match = MARKER.search(path.read_text())
    return match[1] if match else "invalid"


def valid_files() -> list[Path]:
    return [POLICIES / "example.yaml", *sorted((POLICIES / "examples").rglob("*.yaml"))]


def invalid_files() -> list[Path]:
    return sorted(p for p in (POLICIES / "invalid").rglob("*.y*ml") if marker(p) != "n/a")


def test_schema_is_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator()


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: str(p.relative_to(POLICIES)))
def test_valid_policies_match_schema(path: Path) -> None:
    errors = [e.message for e in validator().iter_errors(data_of(path))]
    assert errors == []


@pytest.mark.parametrize("path", invalid_files(), ids=lambda p: str(p.relative_to(POLICIES)))
def test_invalid_policies_against_schema(path: Path) -> None:
    errors = list(validator().iter_errors(data_of(path)))
    if marker(path) == "valid":
        assert errors == [], f"{path} is marked '# schema: valid'"
    else:
        assert errors, f"schema accepts {path}; mark it '# schema: valid' if that is expected"


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every sub-schema that lists fixed keys."""
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


@pytest.mark.parametrize(
    ("where", "keys"),
    [
        ("", loader.TOP_KEYS),
        ("/$defs/tenant", loader.TENANT_KEYS),
        ("/$defs/network", loader.NETWORK_KEYS),
        ("/$defs/rule", loader.RULE_KEYS),
        ("/$defs/allow", loader.ALLOW_KEYS),
        ("/$defs/port_mapping", loader.PORT_MAPPING_KEYS),
    ],
)
def test_schema_and_loader_allow_the_same_keys(where: str, keys: tuple[str, ...]) -> None:
    node = SCHEMA
    for part in where.split("/")[1:]:
        node = node[part]
    assert set(node["properties"]) == set(keys)
    assert node["additionalProperties"] is False


def test_every_fixed_key_object_is_closed() -> None:
    for node in _objects(SCHEMA):
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, node.get("description")


def test_schema_constants_match_model() -> None:
    defs = SCHEMA["$defs"]
    assert defs["name"]["pattern"] == model.NAME_PATTERN
    vni = defs["network"]["properties"]["vni"]
    assert (vni["minimum"], vni["maximum"]) == (model.VNI_MIN, model.VNI_MAX)
    assert tuple(defs["allow"]["properties"]["proto"]["enum"]) == model.PROTOS
    assert tuple(defs["allow"]["then"]["properties"]["proto"]["enum"]) == model.PORT_PROTOS
    number = defs["allow"]["properties"]["port"]["oneOf"][0]
    assert (number["minimum"], number["maximum"]) == (model.PORT_MIN, model.PORT_MAX)


@pytest.mark.parametrize(
    ("port", "ok"),
    [(1, True), (65535, True), (0, False), (65536, False), ("1-65535", True),
     ("8000-8080", True), ("0-80", False), ("80-65536", False), ("80", False), ("a-b", False)],
)
def test_port_pattern(port: object, ok: bool) -> None:
    rule = {"allow": {"from": "a", "to": "b", "proto": "tcp", "port": port}}
    policy = {"tenants": {"t": {"policy": [rule]}}}
    assert validator().is_valid(policy) is ok


@pytest.mark.parametrize(
    ("subnet", "ok"),
    [("10.0.0.0/8", True), ("2001:db8::/32", True), ("10.0.0.0/33", False),
     ("256.0.0.0/8", False), ("10.0.0.0", False), ("2001:db8::/129", False), ("web", False)],
)
def test_subnet_pattern(subnet: str, ok: bool) -> None:
    policy = {"tenants": {"t": {"networks": {"n": {"vni": 1, "subnet": subnet}}}}}
    assert validator().is_valid(policy) is ok
