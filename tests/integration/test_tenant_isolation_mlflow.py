"""Tenants cannot touch each other's MLflow resources: a real `mlflow server --app-name basic-auth`
(SQLite backend, its artifact proxy), tenants `fraud` and `cardfraud` onboarded by the admin
(identity/mlflow_auth.py). Each cross-tenant attempt gets the server's own refusal, which the
platform raises as AccessDenied naming the identity and the resource; the same calls on the
tenant's own model succeed (so the refusals are not a broken set-up).

Runs wherever the `mlflow[auth]` extra (Flask-WTF) is installed; required under CI=true."""

from __future__ import annotations

import importlib.util
import os

import httpx
import pytest

from mlplatform import services
from mlplatform.config import load_tenant
from mlplatform.identity import mlflow_auth
from mlplatform.identity.mlflow_auth import as_user
from mlplatform.identity.refusal import AccessDenied
from mlplatform.registry import mlflow_registry
from mlplatform.registry.loading import load_by_alias
from mlplatform.rollout.controller import promote_version
from mlplatform.training import training_set
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant

# timeout: the server's start takes ~20 s alone, minutes on a machine shared with other test runs
pytestmark = [pytest.mark.service, pytest.mark.usefixtures("restore_tracking_uri"), pytest.mark.timeout(1800)]
A, B = "fraud", "cardfraud"  # one name the suffix of the other
LINEAGE = {"trainer": "mlplatform.training.xgboost_trainer:trainer"}


def _log_model(url: str, creds, experiment_id: str) -> tuple[str, str]:
    """As `creds`: a run in the experiment with a small real model; (run_id, model_uri)."""
    import mlflow
    import mlflow.xgboost
    import numpy as np
    import xgboost

    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    model = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=y), num_boost_round=2)
    before, env_before = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(url)
    try:
        with as_user(creds), mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metrics({"pr_auc": 0.9, "roc_auc": 0.9})
            # the platform's flavour and format; fixed requirements skip MLflow's inference subprocess
            info = mlflow.xgboost.log_model(model, name="model", model_format="ubj", pip_requirements=["xgboost"])
            mlflow.log_text("rows", f"{training_set.ARTIFACT}/note.txt")
    finally:  # this module-scoped set-up must not leave the server as the process's tracking URI
        mlflow.set_tracking_uri(before)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before
    return run.info.run_id, info.model_uri


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require(importlib.util.find_spec("flask_wtf") is not None,
            "the mlflow[auth] extra (Flask-WTF) is not installed: `make venv` after the lock change")
    folder = tmp_path_factory.mktemp("mlflow-auth")
    auth = services.Auth.create(folder, environ={})
    with services.mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", folder / "server.log",
                                auth=auth, timeout=600) as url:  # a loaded 2-core machine: minutes
        yield url, auth


@pytest.fixture(scope="module")
def tenants(server, tmp_path_factory):
    url, auth = server
    onboarded = {t: mlflow_auth.onboard(url, auth.admin, t) for t in (A, B)}
    cfgs = {t: load_tenant(write_small_fraud_tenant(tmp_path_factory.mktemp(t), name=t)) for t in (A, B)}
    logged = {t: _log_model(url, onboarded[t].trainer, onboarded[t].experiment_id) for t in (A, B)}
    return onboarded, cfgs, logged


@pytest.fixture
def ws(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server[0])
    return Workspace(tmp_path / "home")


def _denied(excinfo, identity: str, resource: str) -> None:
    err = excinfo.value
    assert err.identity == identity and resource in err.resource, err
    assert identity in str(err) and resource in str(err)
    assert "403" in err.reason or "PERMISSION_DENIED" in err.reason or "Permission denied" in err.reason, err.reason


def test_a_tenant_registers_and_moves_aliases_of_its_own_model_only(tenants, ws):
    onboarded, cfgs, logged = tenants
    a, b = onboarded[A], onboarded[B]
    with as_user(b.trainer):  # B's own model: two versions, the second a challenger
        mlflow_registry.register(cfgs[B], ws, *logged[B], LINEAGE)
        challenger = mlflow_registry.register(cfgs[B], ws, *logged[B], LINEAGE)
        assert challenger.aliases == ["challenger"]
        champion = mlflow_registry.champion_version(mlflow_registry.connect(ws), B).version
    with as_user(a.trainer):
        with pytest.raises(AccessDenied) as excinfo:  # register A's run into B's model
            mlflow_registry.register(cfgs[B], ws, *logged[A], LINEAGE)
        _denied(excinfo, a.trainer.username, f"registered model {B!r}")
        with pytest.raises(AccessDenied) as excinfo:  # move B's champion alias
            promote_version(ws, B, challenger.version)
        _denied(excinfo, a.trainer.username, f"registered model {B!r}")
        with pytest.raises(AccessDenied) as excinfo:  # B's experiment by name
            mlflow_registry.experiment_id(cfgs[B], ws)
        _denied(excinfo, a.trainer.username, f"experiment {B!r}")
        own = mlflow_registry.register(cfgs[A], ws, *logged[A], LINEAGE)  # A's own model: allowed
        assert own.passed
        promote_version(ws, A, own.version)
        assert mlflow_registry.champion_version(mlflow_registry.connect(ws), A).version == own.version
    with as_user(b.predictor):  # read-only: reads B's aliases, cannot move them
        with pytest.raises(AccessDenied) as excinfo:
            promote_version(ws, B, challenger.version)
        _denied(excinfo, b.predictor.username, f"registered model {B!r}")
        assert mlflow_registry.champion_version(mlflow_registry.connect(ws), B).version == champion


def test_a_tenant_cannot_read_another_tenants_models_or_artifacts(tenants, ws, server):
    onboarded, cfgs, logged = tenants
    a, b = onboarded[A], onboarded[B]
    url = server[0]
    with as_user(b.trainer):
        mlflow_registry.register(cfgs[B], ws, *logged[B], LINEAGE)
    with as_user(a.trainer):
        with pytest.raises(AccessDenied) as excinfo:  # B's model by alias (what a predictor loads)
            load_by_alias(cfgs[B], ws, "champion")
        _denied(excinfo, a.trainer.username, f"registered model {B!r}")
        with pytest.raises(AccessDenied) as excinfo:  # B's run artifacts (the training set download)
            training_set.download(url, logged[B][0])
        _denied(excinfo, a.trainer.username, f"MLflow run {logged[B][0]}")
    # the artifact proxy itself, asked for a file of B's run by path: the server refuses A
    path = f"{b.experiment_id}/{logged[B][0]}/artifacts/{training_set.ARTIFACT}/note.txt"
    proxy = f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}"
    assert httpx.get(proxy, auth=(a.trainer.username, a.trainer.password)).status_code == 403
    assert httpx.get(proxy).status_code == 401  # no credentials
    assert httpx.get(proxy, auth=(b.predictor.username, b.predictor.password)).status_code == 200
    with as_user(b.predictor):  # B's read-only identity loads B's champion
        mv, _, model = load_by_alias(cfgs[B], ws, "champion")
        assert model is not None and mv.name == B
