"""The retraining webhook in cluster mode: a worthy alert creates a run of the compiled train_deploy
through the real kfp.Client, against a local HTTP endpoint that STANDS IN FOR THE KFP API SERVER
(tests/monitoring/kfp_api_standin.py: it parses the v2beta1 bodies with kfp_server_api's generated
models and records them; there is no Kubernetes here). Checked: the run's pipeline spec is the
compiled train_deploy (the file the image ships), its parameters are the tenant file's text and the
incident id, its experiment is the tenant's; dedup and cool-down are decided from the runs KFP lists
(a restarted webhook sees them); KFP down -> 503 with the reason."""

from __future__ import annotations

import time

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from starlette.testclient import TestClient

from mlplatform.config import TenantConfig
from mlplatform.monitoring.kfp_submit import KfpRuns, cluster_controller_args
from mlplatform.monitoring.webhook import create_app
from mlplatform.processes import free_port
from mlplatform.workspace import Workspace

from tests.conftest import REPO, write_small_fraud_tenant
from tests.monitoring.kfp_api_standin import KfpApiStandIn
from tests.monitoring.test_webhook import alert, payload

COMPILED = REPO / "pipelines" / "compiled" / "train_deploy.yaml"
COOLDOWN_MINUTES = 30


class Clock:
    def __init__(self):
        self.t = time.time()

    def __call__(self):
        return self.t


@pytest.fixture
def kfp_api():
    server = KfpApiStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def tenant_file(tmp_path):
    return write_small_fraud_tenant(tmp_path / "fraud", **{"retraining": {"cooldown_minutes": COOLDOWN_MINUTES}})


def webhook(tmp_path, host, tenant_file, clock, home="home"):
    """A webhook as `mlplatform webhook` builds it with KFP_HOST and PIPELINE_PACKAGE set (a new one
    = a restarted pod: its own empty scratch space)."""
    args = cluster_controller_args({"KFP_HOST": host, "PIPELINE_PACKAGE": str(COMPILED)})
    assert isinstance(args["state"], KfpRuns)
    return TestClient(create_app(Workspace(tmp_path / home), tenant_files={"fraud": tenant_file}, clock=clock, **args))


def outcomes(client, *alerts):
    r = client.post("/alerts", json=payload(*alerts))
    assert r.status_code == 200, r.text
    return [x["outcome"] for x in r.json()["results"]]


def normalized(doc: dict, message) -> dict:
    return json_format.MessageToDict(json_format.ParseDict(doc, message))


def test_an_alert_creates_a_run_of_the_compiled_pipeline(tmp_path, kfp_api, tenant_file):
    clock = Clock()
    with webhook(tmp_path, kfp_api.url, tenant_file, clock) as client:
        assert outcomes(client, alert(fp="a1")) == ["started"]
    (create,) = [body for method, what, body in kfp_api.calls if (method, what) == ("POST", "runs")]
    (experiment,) = kfp_api.experiments.values()
    assert experiment.display_name == "fraud" and create.experiment_id == experiment.experiment_id
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock.t))
    assert create.display_name == f"fraud-alert-retrain-{stamp}"
    # parameters: the tenant file as YAML text, the incident id (embedded mode's run id)
    params = create.runtime_config.parameters
    # the tasks act as the tenant: the Secret charts/tenant makes for them (identity.yaml)
    assert params == {"tenant": tenant_file.read_text(), "run_id": f"retrain-{stamp}", "identity_secret": "fraud-pipeline"}
    assert TenantConfig.model_validate(yaml.safe_load(params["tenant"])).name == "fraud"
    # the spec is the compiled train_deploy, caching off for every task (a retrain reads fresh data)
    tasks = create.pipeline_spec["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(t["cachingOptions"].get("enableCache", False) is False for t in tasks.values())
    assert_is_compiled_train_deploy(create.pipeline_spec)


def assert_is_compiled_train_deploy(sent: dict) -> None:
    """`sent` (a created run's pipeline_spec) is pipelines/compiled/train_deploy.yaml, both documents,
    caching options aside (a client may set them per run)."""
    pipeline_doc, platform_doc = yaml.safe_load_all(COMPILED.read_text())
    assert sent["platform_spec"] == normalized(platform_doc, pipeline_spec_pb2.PlatformSpec())
    tasks = sent["pipeline_spec"]["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "validate", "features", "stage", "train", "register"}
    expected = normalized(pipeline_doc, pipeline_spec_pb2.PipelineSpec())
    for t in (*tasks.values(), *expected["root"]["dag"]["tasks"].values()):
        t.pop("cachingOptions", None)
    assert sent["pipeline_spec"] == expected
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "train-deploy"


def test_dedup_and_cooldown_come_from_the_runs_kfp_lists(tmp_path, kfp_api, tenant_file):
    clock = Clock()
    with webhook(tmp_path, kfp_api.url, tenant_file, clock) as client:
        assert outcomes(client, alert(fp="a1"), alert(fp="a2")) == ["started", "active"]
        assert outcomes(client, alert(fp="a1")) == ["duplicate"]
        runs = client.get("/retrains").json()["retrains"]
        assert len(runs) == 1 and runs[0]["active"] is True and runs[0]["pid"] in kfp_api.runs
    (run_id,) = kfp_api.runs
    # a restarted pod (new process state, new scratch space) finds the run through KFP
    kfp_api.set_state(run_id, "RUNNING")
    with webhook(tmp_path, kfp_api.url, tenant_file, clock, home="home2") as client:
        assert outcomes(client, alert(fp="a1")) == ["active"]
        kfp_api.set_state(run_id, "SUCCEEDED")
        clock.t += 60
        assert outcomes(client, alert(fp="b1")) == ["cooldown"]
        clock.t += COOLDOWN_MINUTES * 60
        assert outcomes(client, alert(fp="b1")) == ["started"]
    assert len(kfp_api.runs) == 2
    # listing, never a guess: each decision asked KFP for the tenant's newest alert run
    lists = [q for method, what, q in kfp_api.calls if (method, what) == ("GET", "runs")]
    assert lists and all(q["sort_by"] == "created_at desc" and "-alert-retrain-" in q["filter"] for q in lists)


def test_ignored_alerts_reach_no_kfp(tmp_path, kfp_api, tenant_file):
    with webhook(tmp_path, kfp_api.url, tenant_file, Clock()) as client:
        assert outcomes(client, alert(status="resolved"), alert(name="MLPlatformHighLatency")) == [
            "ignored:resolved", "ignored:not-a-retraining-alert"]
    assert kfp_api.calls == []


def test_kfp_down_is_a_503_with_the_reason_and_counted(tmp_path, tenant_file):
    host = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with webhook(tmp_path, host, tenant_file, Clock()) as client:
        r = client.post("/alerts", json=payload(alert(fp="a1")))
        assert r.status_code == 503 and "KFP API at" in r.json()["error"]
        assert 'mlplatform_webhook_bad_requests_total{status="503"} 1.0' in client.get("/metrics").text
        assert client.get("/healthz").status_code == 200


def test_embedded_mode_without_kfp_host(tmp_path):
    assert cluster_controller_args({}) is None
    with pytest.raises(FileNotFoundError, match="PIPELINE_PACKAGE"):
        cluster_controller_args({"KFP_HOST": "http://kfp:8888", "PIPELINE_PACKAGE": str(tmp_path / "none.yaml")})
