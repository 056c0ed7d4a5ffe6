"""Fixtures for the static cluster checks; every test here gets the marker `cluster`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster_helpers import REPO_ROOT, require


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def helm():
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the environment
        require(False, f"helm-python-sdk is not installed ({exc}); run `make venv`")
    return helm_python


@pytest.fixture(scope="session")
def cases(helm):
    """Every rendered case: mlplatform defaults, tenant defaults, each tenant file (+canary+shadow)."""
    from mlplatform.verify import render

    return render.render_all(REPO_ROOT)


@pytest.fixture(scope="session")
def crds():
    from mlplatform.verify import schemas

    directory = schemas.crds_dir(REPO_ROOT)
    require(directory.is_dir(), f"no CRDs at {directory} (set MLPLATFORM_CRDS_DIR or run `make crds`)")
    return schemas.CrdIndex.load(directory)


@pytest.fixture(scope="session")
def k8s_version() -> str:
    from mlplatform.verify import schemas

    return schemas.kubernetes_version(REPO_ROOT)


@pytest.fixture(scope="session")
def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError as exc:  # pragma: no cover
        require(False, f"kubernetes-validate is not installed ({exc})")
    return kubernetes_validate

