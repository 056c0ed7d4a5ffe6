"""Two workspaces in one process keep their own MLflow stores."""

from __future__ import annotations

import os

from mlplatform.registry.mlflow_registry import connect
from mlplatform.workspace import Workspace


def test_connect_does_not_leak_the_tracking_uri_into_other_workspaces(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    connect(first)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert second.mlflow_uri == f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"


def test_an_explicit_tracking_uri_still_wins(tmp_path, monkeypatch):
    explicit = f"sqlite:///{tmp_path / 'shared.db'}"  # e.g. a team's Postgres in real use
    monkeypatch.setenv("MLFLOW_TRACKING_URI", explicit)
    connect(Workspace(tmp_path / "a"))
    assert os.environ["MLFLOW_TRACKING_URI"] == explicit
    assert Workspace(tmp_path / "b").mlflow_uri == explicit


def test_a_relative_home_is_made_absolute(tmp_path, monkeypatch):
    """Feast and kfp.local change directories: a relative home must not move with them."""
    monkeypatch.chdir(tmp_path)
    ws = Workspace("rel/home")
    monkeypatch.chdir("/")
    assert ws.home == tmp_path / "rel" / "home" and ws.tenant("t").is_absolute()
