"""Shared fixtures: a small fraud tenant, and a workspace where its pipeline steps have run once.

The trained workspace is built once per session through the real libraries (GE, Feast, Ray, MLflow)
on a reduced data size; tests that need a model, a feature store or a registry share it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FRAUD_TENANT = REPO / "examples" / "fraud" / "tenant.yaml"
IN_CI = os.environ.get("CI", "").lower() == "true"

# small enough to train in seconds, large enough for a meaningful validation set
SMALL_FRAUD = {"customers": 300, "terminals": 600, "days": 40, "seed": 11}


def require(condition: bool, reason: str) -> None:
    """Skip when a service or tool is missing locally; under CI=true the test must run, so fail."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def write_small_fraud_tenant(folder: Path, **overrides) -> Path:
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["data"]["generator_args"] = dict(SMALL_FRAUD)
    raw["model"]["num_boost_round"] = 80
    for dotted, value in overrides.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class TrainedWorkspace:
    tenant_file: Path
    home: Path
    run_id: str
    records: dict  # step name -> the record it wrote


@pytest.fixture
def restore_tracking_uri():
    """For tests that point MLflow at a server: put the fluent API's tracking URI back afterwards."""
    import mlflow

    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def stop_after():
    """`stop_after(predictor)`: kserve's teardown (Model.stop) when the test ends, as ModelServer does
    at shutdown; a predictor loaded in the test process would otherwise keep its background work
    (the ranking predictor's item-feature refresher) reading stores that later tests drop."""
    models = []
    yield models.append
    for model in models:
        model.stop()


@pytest.fixture(scope="session")
def small_fraud_tenant(tmp_path_factory) -> Path:
    return write_small_fraud_tenant(tmp_path_factory.mktemp("tenant") / "fraud")


@pytest.fixture(scope="session")
def trained_fraud(tmp_path_factory, small_fraud_tenant) -> TrainedWorkspace:
    """Every step (ingest, validate, features, stage, train, register) run once, in-process."""
    from mlplatform import steps

    home = tmp_path_factory.mktemp("home")
    records = steps.run_all(small_fraud_tenant, home, "session")
    return TrainedWorkspace(small_fraud_tenant, home, "session", records)


@pytest.fixture(scope="session")
def trained_search(tmp_path_factory) -> TrainedWorkspace:
    """The small search tenant through every step, once per session (here, not in tests/search, so
    every folder that needs it shares the one build)."""
    from mlplatform import steps
    from tests.search.conftest import write_small_search_tenant

    tenant = write_small_search_tenant(tmp_path_factory.mktemp("tenant") / "search")
    home = tmp_path_factory.mktemp("search-home")
    return TrainedWorkspace(tenant, home, "session", steps.run_all(tenant, home, "session"))
