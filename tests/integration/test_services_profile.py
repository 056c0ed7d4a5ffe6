"""The services profile: the cluster's hand-offs on one machine. The pipeline steps run with the
settings the charts pass (mlplatform.services.SETTINGS: a real `mlflow server` whose backend store
is PostgreSQL, Feast's SQL registry in PostgreSQL, the Redis online store), then a predictor in an
empty workspace of its own starts and serves from what those services hold, and nothing else:
the model, its threshold and drift reference from MLflow over HTTP, features from Redis.

Skipped locally when PostgreSQL or Redis is absent; required under CI=true. Names carry a uuid."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from mlplatform import services, steps
from mlplatform.config import load_tenant, slug
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("restore_tracking_uri")]


def test_pipeline_and_predictor_share_nothing_but_the_services(tmp_path):
    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    require(services.reachable(svc.redis), f"Redis is not reachable on {svc.redis}")
    import redis

    name = f"svc-{uuid.uuid4().hex[:8]}"
    cfg = load_tenant(write_small_fraud_tenant(tmp_path / "tenant", name=name))
    tenant = str(cfg.source_path)
    server_home, train_home, serve_home = tmp_path / "server", tmp_path / "train", tmp_path / "serve"
    host, port = svc.redis.split(":")
    keys = redis.Redis(host=host, port=int(port))
    try:
        with services.profile(server_home, tmp_path / "mlflow-server.log", svc) as env:
            assert set(env) == set(services.SETTINGS)
            url = env[services.TRACKING]
            steps.run_all(tenant, train_home, "svc", isolated=False)
            client = MlflowClient(url)
            assert client.get_experiment_by_name(name).artifact_location.startswith("mlflow-artifacts:")
            champion = client.get_model_version_by_alias(name, "champion")
            assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
            # nothing of MLflow or of Feast's registry and online store on the training side's disk
            for leftover in ("mlflow.db", "mlartifacts", "registry.db", "online_store.db", "MLmodel"):
                assert not list(train_home.rglob(leftover)), leftover
            assert list((server_home / "mlflow-server-artifacts").rglob("MLmodel"))
            assert list(keys.scan_iter(match=b"*" + slug(name).encode()))  # materialised into Redis

            from mlplatform.tasks import task_for
            from mlplatform.tenants import apply_env_overrides

            served = apply_env_overrides(cfg)
            predictor = task_for(served).predictor(served, Workspace(serve_home))
            predictor.load()
            assert predictor.ready and predictor.model_version == str(champion.version)
            assert predictor.monitor.reference is not None  # the drift reference, over HTTP
            # the online features of a customer the data knows, read from Redis by a process whose
            # workspace never held a Feast store
            from mlplatform.data.ingest import load_raw

            known = load_raw(cfg, Workspace(train_home)).iloc[-1]
            got = predictor.online.lookup({"customer_id": [int(known["customer_id"])],
                                           "terminal_id": [int(known["terminal_id"])]})
            # the card's hourly bucket state (its velocity windows are counted from it per request)
            assert got["customer_bucket_count"][0] and sum(got["customer_bucket_count"][0]) > 0
            assert not list(serve_home.rglob("online_store.db")) and not list(serve_home.rglob("registry.db"))
    finally:
        leftovers = list(keys.scan_iter(match=b"*" + slug(name).encode()))
        if leftovers:
            keys.delete(*leftovers)
