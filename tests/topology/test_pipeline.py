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
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from mlplatform import services
from mlplatform.config import load_tenant
from mlplatform.envvars import scoped_environ
from mlplatform.identity import mlflow_auth, sql_registry
from mlplatform.identity.redis_acl import feast_project
from mlplatform.monitoring.kfp_submit import identity_secret
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
                                      rendered_platform, rendered_tenant, secrets, service_hosts, settings)
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


def run_rayjob_entrypoint(tenant_file: Path, mlflow_run_id: str, scratch: Path, keys: dict) -> None:
    """The RayJob training/rayjob.py builds for the staged run: its head container, its entrypoint,
    MLflow as the tenant's trainer (the Secret the tenant chart rendered)."""
    job = build_rayjob(load_tenant(tenant_file), mlflow_run_id)
    pod = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (head,) = pod["containers"]
    container = Container.from_pod(pod, head, scratch, secrets=keys)
    container.argv = shlex.split(job["spec"]["entrypoint"])
    assert container.argv == ["mlplatform", "train-run", mlflow_run_id]
    # no tenant file, no workspace: scratch, and its identity (MLflow as the trainer)
    assert {v.mount_path for v in container.volumes} == {"/tmp", "/dev/shm", "/etc/mlplatform-identity"}
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
    container = Container.from_pod(pod, spec, scratch, config_maps(objects), secrets=secrets(objects))
    assert settings(container).get(services.PREDICTION_LOG), "the quality job gets the shared prediction log"
    done = Sandbox(scratch, service_hosts(settings(container))).run(container, timeout=600)
    assert done.returncode == 0, f"the quality job failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    series = quality_series(gateway)
    assert ("mlplatform_model_quality_computed_timestamp_seconds", name, None, None) in series, series
    return json.loads(done.stdout)


def start_platform_redis(scratch: Path, port: int) -> tuple[subprocess.Popen, dict[str, dict[str, str]]]:
    """The platform chart's Redis container (its password read from the mounted redis-admin Secret)
    on `port` of this machine; its readiness probe must pass as rendered. Returns the process and
    the platform render's Secrets (the admins' credentials)."""
    platform = rendered_platform({})
    keys = secrets(platform)
    pod, spec = pod_of(platform, "Deployment", "redis")
    container = Container.from_pod(pod, spec, scratch, config_maps(platform), secrets=keys)
    assert container.argv[:2] == ["sh", "-c"] and keys["redis-admin"]["password"] not in container.argv[2]
    container.argv[2] += f" --port {port} --bind 127.0.0.1"  # the Service's port, on this machine
    box = Sandbox(scratch)
    process = box.start(container, scratch.parent / "redis.log")
    probe = list(spec["readinessProbe"]["exec"]["command"])
    assert probe[-1].endswith("redis-cli ping")
    probe[-1] = probe[-1].replace("redis-cli ping", f"redis-cli -p {port} ping")
    deadline = time.monotonic() + 30
    while box.run(container, probe, timeout=30).stdout.strip() != "PONG":
        assert process.poll() is None and time.monotonic() < deadline, (scratch.parent / "redis.log").read_text()
        time.sleep(0.2)
    import redis

    with pytest.raises(redis.AuthenticationError):  # the default user needs the password
        redis.Redis(host="127.0.0.1", port=port).ping()
    return process, keys


def run_onboarding(objects: list[dict], name: str, scratch: Path, admins: dict[str, dict[str, str]]) -> dict:
    """The tenant chart's onboarding Job (platform namespace), in its own sandbox, as the admins."""
    pod, spec = pod_of(objects, "Job", f"{name}-onboard")
    keys = secrets(objects) | admins
    container = Container.from_pod(pod, spec, scratch, config_maps(objects), secrets=keys)
    assert container.argv[:2] == ["mlplatform", "onboard"] and container.uid == 10001
    done = Sandbox(scratch, service_hosts(container.env)).run(container, timeout=300)
    assert done.returncode == 0, f"the onboarding Job failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["fraud", "search"])
def test_the_compiled_pipeline_trains_and_the_charts_predictor_serves_each_in_its_own_sandbox(tmp_path, kind,
                                                                                              gateway):
    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    require(shutil.which("redis-server"), "redis-server is not installed (apt-get install redis-server)")
    assert services.postgres_address(svc.postgres).startswith("127.0.0.1:"), "the sandbox maps names to 127.0.0.1"
    import redis
    from mlflow import MlflowClient

    source = small_tenant(kind, tmp_path / "source")
    name, process, redis_process = load_tenant(source).name, None, None
    rport = free_port()
    auth = services.Auth.create(tmp_path / "auth")
    try:
        redis_process, platform_keys = start_platform_redis(tmp_path / "redis", rport)
        admin_redis = redis.Redis(host="127.0.0.1", port=rport, password=platform_keys["redis-admin"]["password"])
        with services.profile(tmp_path / "server", tmp_path / "mlflow-server.log", svc,
                              allowed_hosts=[f"{CLUSTER_MLFLOW}:*"], auth=auth) as env, mlflow_auth.as_user(auth.admin):
            port = free_port()
            values = chart_values(source, svc, env[services.TRACKING], port, urlsplit(gateway).port, redis_port=rport)
            tenant_file = tmp_path / "installed" / "tenant.yaml"  # the tenant file as the cluster holds it
            tenant_file.parent.mkdir()
            tenant_file.write_text(yaml.safe_dump(values, sort_keys=False))
            objects = rendered_tenant(values)
            maps, keys = config_maps(objects), secrets(objects)
            hosts = service_hosts(maps["mlplatform-services"] | keys[f"{name}-pipeline"])
            assert set(hosts) == {CLUSTER_MLFLOW, "redis.mlplatform.svc.cluster.local", CLUSTER_POSTGRES}

            # the admins' Secrets as the running servers have them: MLflow's admin is this run's,
            # PostgreSQL's superuser is this machine's (trust authentication: no password checked)
            admins = {"mlflow-admin": {"username": auth.admin.username, "password": auth.admin_password},
                      "redis-admin": platform_keys["redis-admin"],
                      "postgres-auth": {"username": make_url(svc.postgres).username, "password": "unused-by-trust"}}
            onboarded = run_onboarding(objects, name, tmp_path / "onboarding", admins)
            assert onboarded["redis"]["users"] == [f"{name}.reader", f"{name}.writer", f"{name}.stream"]
            assert onboarded["postgres"]["role"] == sql_registry.role(name)

            run = PipelineRun(tmp_path / "pipeline", {"tenant": tenant_file.read_text(), "run_id": "topo",
                                                       "mode": "cluster", "identity_secret": identity_secret(name)},
                              maps, hosts, secrets=keys)
            task_env = run.env("ingest")  # MLflow (NO_PERMISSIONS by default) as the tenant only
            assert task_env["MLFLOW_TRACKING_USERNAME"] == f"{name}.trainer" and "MLFLOW_TRACKING_PASSWORD" in task_env
            for task in ("ingest", "validate", "features", "stage"):
                done = run.run(task)
                assert done.returncode == 0, f"task {task} failed:\n{done.log}"
            staged = json.loads(run.done["stage"].parameters["Output"])
            run_rayjob_entrypoint(tenant_file, staged["mlflow_run_id"], tmp_path / "rayjob", keys)
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
            assert list(admin_redis.scan_iter(match=b"*" + feast_project(name).encode())), "nothing materialised"

            container, box = predictor(tmp_path / "pod", objects=objects)  # the render onboarded above
            assert container.argv == ["mlplatform", "serve", name] and container.uid == 10001
            (identity,) = [v.source for v in container.volumes if v.mount_path == container.env["MLPLATFORM_IDENTITY_DIR"]]
            assert (identity / "MLFLOW_TRACKING_USERNAME").read_text() == f"{name}.predictor"  # read-only in MLflow
            assert (identity / "MLPLATFORM_REDIS_USERNAME").read_text() == f"{name}.reader"
            log = tmp_path / "predictor.log"
            process = box.start(container, log)
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/v2/health/ready", process, log)
            # the test's own view of the snapshot: the ingest task's output artifact, read with the same settings
            observer = Workspace(tmp_path / "observer")
            take(str(run.done["ingest"].artifacts["snapshot"]), observer.raw_dir(name))
            as_predictor = {k: v for k, v in keys[f"{name}-predictor"].items() if not k.startswith("MLFLOW_")}
            for url in (services.REGISTRY, services.PREDICTION_LOG):  # the Service's name is the sandboxes' alone
                as_predictor[url] = make_url(as_predictor[url]).set(host="127.0.0.1").render_as_string(hide_password=False)
            with scoped_environ(as_predictor | {services.REDIS: f"127.0.0.1:{rport}"}):  # Feast as the predictor reads
                cfg = apply_env_overrides(load_tenant(tenant_file))
                check_answers(kind, cfg, observer, base, str(champion.version))
            (scratch,) = [v.source for v in container.volumes if v.mount_path == "/tmp"]
            assert not list(scratch.rglob("registry.db")) and not list(scratch.rglob("online_store.db"))
            assert not list(scratch.rglob("predictions/*/part-*.parquet")), "the predictor logged to its own disk"
            if kind == "fraud":  # (search: its click feedback is not yet in a shared store)
                # the log flushes every second; the sandbox's stop is no pod's graceful SIGTERM
                logged = SqlSink(sql_registry.tenant_url(svc.postgres, name), name)  # in the tenant's own schema
                deadline = time.monotonic() + 30
                while len(logged.read("stable", None)) < 12 and time.monotonic() < deadline:
                    time.sleep(0.5)
                record = run_quality_job(objects, name, tmp_path / "quality", gateway)
                assert record["predictions"] == 12, record  # 5 V1 + 5 V2 + 2 cold-start rows
    finally:
        for proc in (process, redis_process):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except Exception:  # noqa: BLE001
                    proc.kill()
        sql_registry.drop(svc.postgres, name)  # the tenant's role, its registry and prediction log
