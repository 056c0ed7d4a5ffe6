"""Every test here runs containers in the sandbox (tests/topology/sandbox.py): marker `topology`;
skipped locally, with the reason, when bubblewrap, root or the image venv is missing (required
under CI=true, where .ci/run installs bubblewrap and runs `make image-venv`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require
from tests.topology import sandbox


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.topology)


@pytest.fixture
def can_sandbox() -> None:
    reason = sandbox.missing()
    require(reason is None, reason or "")
