"""The cluster's topology on this machine: every container of a training run and of serving runs as
its own sandboxed process (uid 10001, read-only root, only its pod's scratch writable), against this
machine's PostgreSQL, Redis and a real `mlflow server`, and nothing passes between them but what the
cluster passes: KFP artifacts and parameters (tests/topology/launcher.py plays KFP's backend),
MLflow over HTTP, Feast's SQL registry and Redis.

1. ingest, validate, features, stage: the executors of pipelines/compiled/train_deploy.yaml, given the
   tenant file as YAML text (as the cluster's retrain job passes it) and the env the IR maps from the
   chart's `mlplatform-services` ConfigMap;
2. train: in cluster mode the train task only creates a RayJob through the Kubernetes API (no cluster
   here), so the RayJob's own entrypoint runs instead, in the sandbox of the head container that
   training/rayjob.py builds (its env, mounts and securityContext), reading its input from the staged
   MLflow run as the RayJob does; its Ray is a local one where KubeRay would give it a cluster;
3. register: the executor again, given the record the train task would read back from that run;
4. the tenant chart's predictor container loads the champion over HTTP and answers V1 and V2 requests
   with features from Redis, logging them to the prediction log in PostgreSQL;
5. (fraud) the tenant chart's quality CronJob container reads that log, ingests the labels from the
   tenant's data source into its own /tmp and pushes its gauges to a real Pushgateway.
The chart is rendered from the tenant's own file with only the deployment values a cluster install
sets changed (tests/topology/manifests.py, chart_values); service hostnames stay the cluster's."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from mlplatform import services
from mlplatform.config import load_tenant, slug
from mlplatform.monitoring.prediction_sinks import SqlSink
from mlplatform.pipeline_tasks import take
from mlplatform.processes import free_port
from mlplatform.tenants import apply_env_overrides
from mlplatform.training.mlflow_log import recorded
from mlplatform.training.rayjob import build_rayjob
from mlplatform.workspace import Workspace
from tests.conftest import require, write_small_fraud_tenant
from tests.search.conftest import write_small_search_tenant
from tests.monitoring.test_quality_push import gateway, quality_series  # noqa: F401 - a fixture
from tests.topology.launcher import PipelineRun, TaskRun
from tests.topology.manifests import (CLUSTER_MLFLOW, CLUSTER_POSTGRES, chart_values, config_maps, pod_of, predictor,
                                      rendered_tenant, service_hosts)
from tests.topology.sandbox import Container, Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("can_sandbox", "restore_tracking_uri")]


def small_tenant(kind: str, folder: Path) -> Path:
    """The small test tenant of `kind` under a name of its own (the server's database outlives the test)."""
    path = write_small_fraud_tenant(folder) if kind == "fraud" else write_small_search_tenant(folder)
    raw = yaml.safe_load(path.read_text())
    raw["name"] = f"topo-{kind}-{uuid.uuid4().hex[:6]}"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def wait_ready(url: str, process, log: Path, timeout: float = 300) -> None:
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


def run_rayjob_entrypoint(tenant_file: Path, mlflow_run_id: str, scratch: Path) -> None:
    """The RayJob training/rayjob.py builds for the staged run: its head container, its entrypoint."""
    job = build_rayjob(load_tenant(tenant_file), mlflow_run_id)
    pod = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (head,) = pod["containers"]
    container = Container.from_pod(pod, head, scratch)
    container.argv = shlex.split(job["spec"]["entrypoint"])
    assert container.argv == ["mlplatform", "train-run", mlflow_run_id]
    assert {v.mount_path for v in container.volumes} == {"/tmp", "/dev/shm"}  # no tenant file, no workspace
    done = Sandbox(scratch, service_hosts(container.env)).run(container, timeout=1200)
    assert done.returncode == 0, f"the RayJob's entrypoint failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"


def check_answers(kind: str, cfg, ws: Workspace, base: str, version: str) -> None:
    """V1 and V2 requests built from the ingested snapshot, answered with the champion's version."""
    from mlplatform.serving import smoke

    if kind == "fraud":
        rows, _ = smoke.newest_rows(cfg, ws, 5)
        assert rows, "no rows in the snapshot"
        v1 = httpx.post(f"{base}{smoke.v1_path(cfg)}", json=smoke.v1_body(rows), timeout=30)
        assert v1.status_code == 200, v1.text
        predictions = v1.json()["predictions"]
        assert len(predictions) == len(rows)
        assert all(0.0 <= p["score"] <= 1.0 and p["model_version"] == version for p in predictions)
        v2 = httpx.post(f"{base}{smoke.v2_path(cfg)}", json=smoke.v2_body(cfg, rows), timeout=30)
        assert v2.status_code == 200, v2.text
        (score,) = [o for o in v2.json()["outputs"] if o["name"] == "score"]
        assert len(score["data"]) == len(rows) and all(0.0 <= s <= 1.0 for s in score["data"])
        # features come from Redis: an entity it does not hold is scored as cold start (policy)
        unseen, made = smoke.with_unseen(cfg, rows[:2], every=2)
        cold = httpx.post(f"{base}{smoke.v1_path(cfg)}", json=smoke.v1_body(unseen), timeout=30)
        assert cold.status_code == 200, cold.text
        assert made == {1} and cold.json()["predictions"][1]["cold_start"] is True, cold.text
        return
    from mlplatform.serving.ranking_smoke import smoke_test

    summary = smoke_test(cfg, ws, base, n=12, v2_every=3)  # V1 and V2 queries, then bad requests
    assert summary["errors"] == 0 and summary["v2_requests"] >= 1 and summary["mean_results"] > 0, summary
    assert not summary["bad_requests_not_rejected"] and summary["alive_after"], summary
    answer = httpx.post(f"{base}{smoke.v1_path(cfg)}", json={"query": "wireless earbuds", "n": 5}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["model_version"] == version, answer.json()
    assert len(answer.json()["predictions"][0]["results"]) == 5


def run_quality_job(objects: list[dict], name: str, scratch: Path, gateway: str) -> dict:
    """The tenant chart's quality CronJob, in its own sandbox; what it pushed."""
    pod, spec = pod_of(objects, "CronJob", f"{name}-quality")
    container = Container.from_pod(pod, spec, scratch, config_maps(objects))
    assert container.env.get(services.PREDICTION_LOG), "the quality job gets the shared prediction log"
    done = Sandbox(scratch, service_hosts(container.env)).run(container, timeout=600)
    assert done.returncode == 0, f"the quality job failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    series = quality_series(gateway)
    assert ("mlplatform_model_quality_computed_timestamp_seconds", name, None, None) in series, series
    return json.loads(done.stdout)


@pytest.mark.parametrize("kind", ["fraud", "search"])
def test_the_compiled_pipeline_trains_and_the_charts_predictor_serves_each_in_its_own_sandbox(tmp_path, kind,
                                                                                              gateway):
    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    require(services.reachable(svc.redis), f"Redis is not reachable on {svc.redis}")
    for address in (services.postgres_address(svc.postgres), svc.redis):
        assert address.startswith("127.0.0.1:"), f"the sandbox maps service names to 127.0.0.1, not {address}"
    import redis
    from mlflow import MlflowClient

    source = small_tenant(kind, tmp_path / "source")
    keys = redis.Redis(host="127.0.0.1", port=int(svc.redis.rpartition(":")[2]))
    name, process = load_tenant(source).name, None
    try:
        with services.profile(tmp_path / "server", tmp_path / "mlflow-server.log", svc,
                              allowed_hosts=[f"{CLUSTER_MLFLOW}:*"]) as env:
            port = free_port()
            values = chart_values(source, svc, env[services.TRACKING], port, urlsplit(gateway).port)
            tenant_file = tmp_path / "installed" / "tenant.yaml"  # the tenant file as the cluster holds it
            tenant_file.parent.mkdir()
            tenant_file.write_text(yaml.safe_dump(values, sort_keys=False))
            objects = rendered_tenant(values)
            maps = config_maps(objects)
            hosts = service_hosts(maps["mlplatform-services"])
            assert set(hosts) == {CLUSTER_MLFLOW, "redis.mlplatform.svc.cluster.local", CLUSTER_POSTGRES}

            run = PipelineRun(tmp_path / "pipeline", {"tenant": tenant_file.read_text(), "run_id": "topo",
                                                       "mode": "cluster"}, maps, hosts)
            for task in ("ingest", "validate", "features", "stage"):
                done = run.run(task)
                assert done.returncode == 0, f"task {task} failed:\n{done.log}"
            staged = json.loads(run.done["stage"].parameters["Output"])
            run_rayjob_entrypoint(tenant_file, staged["mlflow_run_id"], tmp_path / "rayjob")
            trained = recorded(Workspace(tmp_path / "observer"), staged["mlflow_run_id"])  # what the train task reads back
            run.done["train"] = TaskRun("train", 0, "", parameters={"Output": json.dumps(trained)})
            registered = run.run("register")
            assert registered.returncode == 0, registered.log
            assert json.loads(registered.parameters["Output"])["aliases"] == ["champion"]

            client = MlflowClient(env[services.TRACKING])
            champion = client.get_model_version_by_alias(name, "champion")
            assert champion.run_id == staged["mlflow_run_id"]
            artifacts = {f.path for f in client.list_artifacts(champion.run_id)}
            assert {"training_set", "tenant.yaml", "train_record.json", "validation"} <= artifacts, artifacts
            if kind == "search":
                assert "retrieval_index" in artifacts
            # hand-offs went through artifacts and services only: no store on any task's disk
            for leftover in ("mlflow.db", "mlartifacts", "registry.db", "online_store.db", "MLmodel"):
                assert not list((tmp_path / "pipeline").rglob(leftover)), leftover
                assert not list((tmp_path / "rayjob").rglob(leftover)), leftover
            assert list(keys.scan_iter(match=b"*" + slug(name).encode())), "nothing materialised into Redis"

            container, box = predictor(tmp_path / "pod", values)
            assert container.argv == ["mlplatform", "serve", name] and container.uid == 10001
            log = tmp_path / "predictor.log"
            process = box.start(container, log)
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/v2/health/ready", process, log)
            # the test's own view of the snapshot: the ingest task's output artifact, read with the same settings
            observer = Workspace(tmp_path / "observer")
            cfg = apply_env_overrides(load_tenant(tenant_file))
            take(str(run.done["ingest"].artifacts["snapshot"]), observer.raw_dir(name))
            check_answers(kind, cfg, observer, base, str(champion.version))
            (scratch,) = [v.source for v in container.volumes if v.mount_path == "/tmp"]
            assert not list(scratch.rglob("registry.db")) and not list(scratch.rglob("online_store.db"))
            assert not list(scratch.rglob("predictions/*/part-*.parquet")), "the predictor logged to its own disk"
            if kind == "fraud":  # (search: its click feedback is not yet in a shared store)
                # the log flushes every second; the sandbox's stop is no pod's graceful SIGTERM
                logged = SqlSink(svc.postgres, name)
                deadline = time.monotonic() + 30
                while len(logged.read("stable", None)) < 12 and time.monotonic() < deadline:
                    time.sleep(0.5)
                record = run_quality_job(objects, name, tmp_path / "quality", gateway)
                assert record["predictions"] == 12, record  # 5 V1 + 5 V2 + 2 cold-start rows
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
        from sqlalchemy import create_engine, text

        with create_engine(svc.postgres).begin() as conn:  # the predictors' log
            conn.execute(text(f"DROP TABLE IF EXISTS prediction_log_{slug(name)}"))
