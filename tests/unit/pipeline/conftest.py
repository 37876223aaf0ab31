"""The fabric fixture shared by the pipeline tests (topology: tests/unit/pipeline/topology.py)."""

from __future__ import annotations

import pytest

from tests.unit.pipeline.topology import Fabric, build_directory


@pytest.fixture(scope="module")
def fabric() -> Fabric:
    return Fabric(build_directory())
