"""The fraud predictor as the cluster runs it: the container of the tenant chart's InferenceService
(command, args, env, volume mounts, securityContext: the rendered manifest), started in its own
sandbox (uid 10001, read-only root, only the chart's /tmp emptyDir writable) against this machine's
PostgreSQL, Redis and a real `mlflow server`, after the fraud tenant was trained through those
services (the services profile, as tests/integration/test_services_profile.py does). It must load
its champion over HTTP and answer V1 and V2 requests with features read from Redis.

The chart is rendered from the trained tenant's own file, with only the deployment values a cluster
install would set changed: where MLflow listens (its port here), Feast's SQL registry and the
serving port (free ports, the host's network is shared). Service hostnames stay the chart's; the
sandbox's /etc/hosts maps them to 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import mlflow
import pytest
from sqlalchemy.engine import make_url

from mlplatform import services, steps
from mlplatform.config import load_tenant, slug
from mlplatform.processes import free_port
from mlplatform.serving import smoke
from mlplatform.tenants import apply_env_overrides
from mlplatform.verify import render
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant
from tests.topology.manifests import predictor

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("can_sandbox", "restore_tracking_uri")]

CLUSTER_POSTGRES = "postgres.mlplatform.svc.cluster.local"
CLUSTER_MLFLOW = "mlflow.mlplatform.svc.cluster.local"  # the chart's mlflow server answers to it (--allowed-hosts)


def chart_values(tenant_file: Path, svc: services.Services, mlflow_url: str, port: int) -> dict:
    """The tenant file as chart values, pointed at this machine's services under the cluster's names."""
    values = render.load_values(tenant_file)
    cluster = values.setdefault("cluster", {})
    cluster["mlflow_tracking_uri"] = f"http://{CLUSTER_MLFLOW}:{urlsplit(mlflow_url).port}"
    cluster["redis_address"] = f"redis.mlplatform.svc.cluster.local:{svc.redis.rpartition(':')[2]}"
    cluster["feast_registry"] = make_url(svc.postgres).set(host=CLUSTER_POSTGRES).render_as_string(hide_password=False)
    values.setdefault("serving", {})["port"] = port
    return values


def wait_ready(url: str, process, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the predictor exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the predictor was not ready within {timeout} s:\n{log.read_text()[-4000:]}")


def test_the_charts_predictor_serves_the_champion_in_its_sandbox(tmp_path):
    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    require(services.reachable(svc.redis), f"Redis is not reachable on {svc.redis}")
    for address in (services.postgres_address(svc.postgres), svc.redis):
        assert address.startswith("127.0.0.1:"), f"the sandbox maps service names to 127.0.0.1, not {address}"
    import redis

    name = f"topo-{uuid.uuid4().hex[:8]}"
    tenant_file = write_small_fraud_tenant(tmp_path / "tenant", name=name)
    cfg = load_tenant(tenant_file)
    keys = redis.Redis(host="127.0.0.1", port=int(svc.redis.rpartition(":")[2]))
    process = None
    try:
        with services.profile(tmp_path / "server", tmp_path / "mlflow-server.log", svc,
                              allowed_hosts=[f"{CLUSTER_MLFLOW}:*"]) as env:
            train_home = tmp_path / "train"
            steps.run_all(tenant_file, train_home, "topo", isolated=False)
            champion = mlflow.MlflowClient(env[services.TRACKING]).get_model_version_by_alias(name, "champion")

            port = free_port()
            container, box = predictor(tmp_path / "pod", chart_values(tenant_file, svc, env[services.TRACKING], port))
            assert container.argv == ["mlplatform", "serve", name] and container.uid == 10001
            assert {v.mount_path: v.writable for v in container.volumes} == {"/etc/mlplatform": False, "/tmp": True}
            assert set(box.hosts) == {CLUSTER_MLFLOW, "redis.mlplatform.svc.cluster.local", CLUSTER_POSTGRES}
            log = tmp_path / "predictor.log"
            process = box.start(container, log)
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/v2/health/ready", process, log)

            # requests for entities the online store knows (read here through the same settings)
            rows, _ = smoke.newest_rows(apply_env_overrides(cfg), Workspace(train_home), 5)
            assert rows, "no rows with entities known to Redis"
            v1 = httpx.post(f"{base}{smoke.v1_path(cfg)}", json=smoke.v1_body(rows), timeout=30)
            assert v1.status_code == 200, v1.text
            predictions = v1.json()["predictions"]
            assert len(predictions) == len(rows)
            assert all(0.0 <= p["score"] <= 1.0 and p["model_version"] == str(champion.version) for p in predictions)
            v2 = httpx.post(f"{base}{smoke.v2_path(cfg)}", json=smoke.v2_body(cfg, rows), timeout=30)
            assert v2.status_code == 200, v2.text
            (score,) = [o for o in v2.json()["outputs"] if o["name"] == "score"]
            assert len(score["data"]) == len(rows) and all(0.0 <= s <= 1.0 for s in score["data"])
            # features come from Redis: an entity it does not hold is refused (422 by policy)
            (unknown,) = [b for b in smoke.bad_requests(cfg, rows[0]) if b.expect == 422]
            refused = httpx.post(f"{base}{unknown.path}", content=unknown.content, headers=unknown.headers, timeout=30)
            assert refused.status_code == 422, refused.text
            # the predictor wrote only to its own /tmp emptyDir
            (scratch,) = [v.source for v in container.volumes if v.mount_path == "/tmp"]
            assert list(scratch.rglob("feature_store.yaml"))
            assert not list(scratch.rglob("registry.db")) and not list(scratch.rglob("online_store.db"))
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001
                process.kill()
        leftovers = list(keys.scan_iter(match=b"*" + slug(name).encode()))
        if leftovers:
            keys.delete(*leftovers)
