"""MLflow over HTTP only: with MLFLOW_TRACKING_URI naming a real `mlflow server`, nothing of MLflow's
lands on the training process's disk (no client-chosen file:// artifact location: the server's
artifact proxy, `mlflow-artifacts:` URIs), and a predictor whose workspace never held a model starts
from what the server gives it: the model and its drift reference."""

from __future__ import annotations

import os

import mlflow
import pytest
from mlflow import MlflowClient

from mlplatform import steps
from mlplatform.config import load_tenant
from mlplatform.registry import mlflow_registry
from mlplatform.services import mlflow_server
from mlplatform.workspace import Workspace
from tests.conftest import write_small_fraud_tenant

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _restore_tracking_uri(monkeypatch):
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_artifact_location_is_left_to_a_server_and_kept_in_the_workspace_without_one(tmp_path, monkeypatch):
    cfg = load_tenant(write_small_fraud_tenant(tmp_path / "t"))
    ws = Workspace(tmp_path / "home")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_registry.artifact_location(cfg, ws) == (ws.home / "mlartifacts" / cfg.name).as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlplatform.svc.cluster.local:5000")
    assert mlflow_registry.artifact_location(cfg, ws) is None


def test_training_through_mlflow_server_keeps_nothing_of_mlflow_on_its_own_disk(tmp_path, monkeypatch):
    store = tmp_path / "server-artifacts"
    tenant = write_small_fraud_tenant(tmp_path / "tenant")
    cfg = load_tenant(tenant)
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", store, tmp_path / "mlflow-server.log") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        train_home = tmp_path / "train-home"
        for name, step in steps.STEPS.items():
            step(str(tenant), str(train_home), "http")
        client = MlflowClient(url)
        exp = client.get_experiment_by_name(cfg.name)
        assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
        champion = client.get_model_version_by_alias(cfg.name, "champion")
        run = client.get_run(champion.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        assert not (train_home / "mlartifacts").exists() and not (train_home / "mlflow.db").exists()
        assert not list(train_home.rglob("MLmodel")) and not list(train_home.rglob("reference.json"))
        # the server alone wrote the files, under its artifacts destination
        assert list(store.rglob("MLmodel")) and list(store.rglob("reference.json"))

        # the predictor starts from what the server gives it (the workspace holds no model file,
        # checked above): the model, its threshold tag and its drift reference. Its online store is
        # the workspace's SQLite here: Feast on Redis is the services profile's test.
        from mlplatform.tasks import task_for

        predictor = task_for(cfg).predictor(cfg, Workspace(train_home))
        predictor.load()
        assert predictor.ready and predictor.model_version == str(champion.version)
        assert predictor.monitor.reference is not None
        assert set(predictor.monitor.reference.names) >= set(cfg.model.features)
