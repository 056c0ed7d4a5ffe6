"""The service-backed options: MLflow on Postgres, Feast's online store on Redis.

Skipped locally when the service is not reachable; required (failing) under CI=true.
Names carry a uuid so reruns against the same servers never collide; what a test creates it removes.
"""

from __future__ import annotations

import os
import socket
import uuid

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_tenant
from mlplatform.identity.redis_acl import feast_project
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant

pytestmark = pytest.mark.service

PG_URI = os.environ.get("MLPLATFORM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("MLPLATFORM_TEST_REDIS", "127.0.0.1:6379")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_db_driver(url: str) -> None:
    """The DBAPI module SQLAlchemy picks for `url` (SQLAlchemy 2.1 maps postgresql:// to psycopg 3)."""
    from sqlalchemy.engine import make_url

    dialect = make_url(url).get_dialect()
    try:
        dialect.import_dbapi()
    except ImportError as err:
        require(False, f"{url.split('@')[0]}@…: SQLAlchemy's driver {dialect.driver!r} is not installed ({err})")


def require_module(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        require(False, f"python package {name!r} is not installed (run `make venv`)")


# --- MLflow with a Postgres backend store -----------------------------------------------------


def _tiny_booster(features: list[str]):
    import xgboost

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((200, len(features))), columns=features)
    y = (x[features[0]] + 0.1 * rng.random(200) > 0.6).astype(int)
    booster = xgboost.train({"objective": "binary:logistic", "nthread": 1, "max_depth": 2},
                            xgboost.DMatrix(x, label=y, feature_names=features), num_boost_round=5)
    return booster, x.head(5)


def test_mlflow_on_postgres_runs_and_registers_with_aliases(tmp_path, monkeypatch):
    require(reachable("127.0.0.1", 5432), "Postgres is not reachable on 127.0.0.1:5432")
    require_db_driver(PG_URI)
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from mlplatform.registry import mlflow_registry
    from mlplatform.training.xgboost_trainer import load_model, log_model, predict

    monkeypatch.setenv("MLFLOW_TRACKING_URI", PG_URI)
    previous_uri = mlflow.get_tracking_uri()
    name = f"pg-{uuid.uuid4().hex[:10]}"
    cfg = load_tenant(write_small_fraud_tenant(tmp_path / "tenant", name=name))
    ws = Workspace(tmp_path / "home")
    assert ws.mlflow_uri == PG_URI
    client = MlflowClient(tracking_uri=PG_URI)
    try:
        exp_id = mlflow_registry.experiment_id(cfg, ws)
        assert client.get_experiment(exp_id).name == name
        assert mlflow_registry.experiment_id(cfg, ws) == exp_id  # found, not created twice
        booster, example = _tiny_booster(cfg.model.features)
        with mlflow.start_run(experiment_id=exp_id, run_name="pg") as run:
            mlflow.log_params({"train_rows": 200})
            mlflow.log_metrics({"pr_auc": 0.9, "roc_auc": 0.95, "threshold": 0.5})
            info = log_model(booster, signature=infer_signature(example, predict(booster, example)),
                             input_example=example)
        stored = client.get_run(run.info.run_id)
        assert stored.data.metrics["pr_auc"] == 0.9 and stored.data.params["train_rows"] == "200"

        lineage = {"data_snapshot": "0" * 64, "pipeline_run_id": "pg"}
        first = mlflow_registry.register(cfg, ws, run.info.run_id, info.model_uri, lineage)
        second = mlflow_registry.register(cfg, ws, run.info.run_id, info.model_uri, lineage)
        assert (first.version, first.aliases) == ("1", ["champion"])
        assert (second.version, second.aliases) == ("2", ["challenger"])
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        assert client.get_model_version(name, "2").tags["compared_with"] == "v1"
        assert client.get_model_version(name, "1").tags["data_snapshot"] == "0" * 64
        # the model loads by alias through the Postgres-backed registry
        np.testing.assert_allclose(predict(load_model(f"models:/{name}@champion"), example),
                                   predict(booster, example), rtol=1e-6)
    finally:
        for cleanup in (lambda: client.delete_registered_model(name),
                        lambda: client.delete_experiment(client.get_experiment_by_name(name).experiment_id)):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - best effort; the uuid keeps leftovers harmless
                pass
        mlflow.set_tracking_uri(previous_uri)


# --- Feast with the Redis online store --------------------------------------------------------


def _redis_keys(client, project: str) -> list[bytes]:
    return list(client.scan_iter(match=b"*" + project.encode()))  # Feast's keys end with the project


def test_feast_redis_online_store_serves_what_sqlite_serves(tmp_path):
    host, port = REDIS.split(":")
    require(reachable(host, int(port)), f"Redis is not reachable on {REDIS}")
    require_module("redis")
    import redis
    from fraud_tenant.data import simulate

    from mlplatform.features import store

    tag = uuid.uuid4().hex[:10]
    sqlite_cfg = load_tenant(write_small_fraud_tenant(tmp_path / "sq", name=f"sq-{tag}"))
    redis_cfg = load_tenant(write_small_fraud_tenant(
        tmp_path / "rd", name=f"rd-{tag}",
        **{"features.online_store": {"type": "redis", "connection_string": REDIS}},
    ))
    ws = Workspace(tmp_path / "home")
    project = feast_project(redis_cfg.name)  # Feast keys end with it (identity/redis_acl.py)
    client = redis.Redis(host=host, port=int(port))
    assert _redis_keys(client, project) == []

    raw = simulate(customers=60, terminals=120, days=12, seed=5)
    end = raw["tx_datetime"].max().to_pydatetime() + pd.Timedelta(seconds=1)
    rows = (raw.drop_duplicates("customer_id").head(25)[["customer_id", "terminal_id"]]
            .astype(int).to_dict("records"))
    rows.append({"customer_id": 10**9, "terminal_id": 10**9})  # unknown: nulls on both
    fetched = {}
    try:
        for cfg in (sqlite_cfg, redis_cfg):
            store.build_tables(cfg, ws, raw)
            store.apply(cfg, ws)
            store.materialize(cfg, ws, end=end)
            fetched[cfg.features.online_store.type] = store.OnlineFeatures(cfg, ws).fetch(rows)
        assert store.open_store(redis_cfg, ws).config.online_store.type == "redis"
        assert len(_redis_keys(client, project)) > 0  # the values really live in Redis
        on_sqlite, on_redis = fetched["sqlite"], fetched["redis"]
        assert len(on_redis) == len(rows)
        feature_cols = [f.name for v in redis_cfg.features.feature_views for f in v.features]
        pd.testing.assert_frame_equal(on_redis[["customer_id", "terminal_id"]],
                                      on_sqlite[["customer_id", "terminal_id"]])
        for col in feature_cols:
            for got, want in zip(on_redis[col], on_sqlite[col]):  # scalars, or lists (bucket state)
                assert (got is None) == (want is None), col
                if got is not None:
                    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                                               rtol=1e-12, equal_nan=True, err_msg=col)
        assert on_redis.loc[:24, "customer_bucket_count"].notna().all()
        assert on_redis.loc[25, feature_cols].isna().all()
    finally:
        try:
            store.open_store(redis_cfg, ws).teardown()
        finally:
            leftovers = _redis_keys(client, project)
            if leftovers:
                client.delete(*leftovers)
    assert _redis_keys(client, project) == []
