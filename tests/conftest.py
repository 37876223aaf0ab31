"""Shared test settings: integration tests need root and Open vSwitch; in CI they must run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
INTEGRATION_READY = os.geteuid() == 0 and shutil.which("ovs-vswitchd") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # everything under tests/integration/ runs the real thing
        if INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
    if INTEGRATION_READY:
        return
    why = "integration tests need root and Open vSwitch (run scripts/test.sh as root)"
    # In CI a skipped integration test would hide a broken set-up: there it fails instead.
    marker = pytest.mark.usefixtures("_ci_fail") if os.environ.get("CI") else pytest.mark.skip(
        reason=why)
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(marker)


@pytest.fixture
def _ci_fail() -> None:
    pytest.fail("integration tests must run in CI: need root and Open vSwitch")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory):
    """Certificates as a lab makes them (ovs-pki): hypervisors hv1, hv2, hv3 and the
    controller "ctl", and a second, untrusted PKI with its own "hv1"."""
    from dove_lab.pki import Pki
    trusted = Pki(tmp_path_factory.mktemp("pki")).ensure()
    for name in ("hv1", "hv2", "hv3"):
        trusted.issue(name, "switch")
    trusted.issue("ctl", "controller")
    other = Pki(tmp_path_factory.mktemp("other-pki")).ensure()
    other.issue("hv1", "switch")
    return trusted, other
