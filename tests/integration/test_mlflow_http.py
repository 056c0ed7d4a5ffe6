"""MLflow over HTTP only: with a tracking server the client never chooses a file:// artifact location
(the server's artifact proxy, `mlflow-artifacts:` URIs); without one, the workspace keeps them.
Training and serving through a real `mlflow server`: tests/integration/test_services_profile.py."""

from __future__ import annotations

from mlplatform.config import load_tenant
from mlplatform.registry import mlflow_registry
from mlplatform.workspace import Workspace
from tests.conftest import write_small_fraud_tenant


def test_artifact_location_is_left_to_a_server_and_kept_in_the_workspace_without_one(tmp_path, monkeypatch):
    cfg = load_tenant(write_small_fraud_tenant(tmp_path / "t"))
    ws = Workspace(tmp_path / "home")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_registry.artifact_location(cfg, ws) == (ws.home / "mlartifacts" / cfg.name).as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlplatform.svc.cluster.local:5000")
    assert mlflow_registry.artifact_location(cfg, ws) is None

