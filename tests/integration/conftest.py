"""Fixtures that build real labs (real OVS, namespaces, veths) and always tear them down."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dove_lab.lab import Lab
from dove_lab.topology import Topology, load_topology
from ryu_dove.policy import Policy, load_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = str(REPO / "policies" / "example.yaml")

def lab_name() -> str:
    return "t" + secrets.token_hex(3)


@pytest.fixture
def example_policy() -> Policy:
    return load_policy([EXAMPLE_POLICY])


@pytest.fixture
def write_topology(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str) -> str:
        path = tmp_path / f"topology-{secrets.token_hex(2)}.yaml"
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Build labs from topology text; every lab made here is taken down after the test."""
    labs: list[Lab] = []

    def make(topology_path: str, *, controller: bool = False,
             policy_paths: list[str] | None = None,
             controller_args: list[str] | None = None, tls: bool = True,
             osken_manager: str = "") -> Lab:
        paths = policy_paths or [EXAMPLE_POLICY]
        policy = load_policy(paths)
        topology: Topology = load_topology(topology_path, policy)
        lab = Lab(lab_name())
        labs.append(lab)
        lab.up(topology, paths, policy, controller=controller, controller_args=controller_args,
               tls=tls, osken_manager=osken_manager)
        return lab

    yield make
    for lab in labs:
        lab.down()
