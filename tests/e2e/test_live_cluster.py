"""Against the running kind cluster (`make up`; .github/workflows/cluster-e2e.yaml runs exactly
these): train fraud through the KFP API, wait for its predictor, send the repository's V1 and V2
request files through the Gateway, and find the tenant's alert rules loaded in Prometheus.

Nobody has run these here (no Docker, no Kubernetes on this project's machines): they skip with the
reason, and tests/unit/test_workflow.py checks that the workflow's own command collects them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest
import yaml

from live_cluster import REPO, V, gateway_service, kubectl, port_forward, require_cluster
from mlplatform.monitoring.kfp_submit import identity_secret

pytestmark = pytest.mark.live_cluster
TENANT = "fraud"
TENANT_FILE = REPO / "examples" / TENANT / "tenant.yaml"


@pytest.fixture(scope="module")
def cluster():
    require_cluster()


@pytest.fixture(scope="module")
def kfp_client(cluster):
    import kfp

    with port_forward(V["NS_KUBEFLOW"], "svc/ml-pipeline", 8888) as url:
        yield kfp.Client(host=url)


@pytest.mark.timeout(4000)
def test_train_deploy_through_the_kfp_api(kfp_client):
    """The compiled pipeline the image ships, the tenant file as YAML text (what the retrain CronJob
    passes), caching off: a fresh run that must succeed."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run = kfp_client.create_run_from_pipeline_package(
        str(REPO / "pipelines" / "compiled" / "train_deploy.yaml"), arguments={"tenant": TENANT_FILE.read_text(), "identity_secret": identity_secret("fraud")},
        run_name=f"{TENANT}-e2e-{stamp}", experiment_name=TENANT, enable_caching=False)
    done = kfp_client.wait_for_run_completion(run.run_id, timeout=3600)
    assert done.state == "SUCCEEDED", f"run {run.run_id} ended {done.state}: {done.error}"


@pytest.mark.timeout(1000)
def test_predictor_becomes_ready(cluster):
    proc = kubectl("-n", TENANT, "wait", f"inferenceservice/{TENANT}", "--for=condition=Ready", "--timeout=900s",
                   timeout=960)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_request_files_through_the_gateway(cluster, protocol):
    path = {"v1": f"/v1/models/{TENANT}:predict", "v2": f"/v2/models/{TENANT}/infer"}[protocol]
    body = (REPO / "examples" / TENANT / "requests" / f"{protocol}.json").read_bytes()
    with port_forward(V["NS_GATEWAY_PROXY"], gateway_service(), 80) as url:
        resp = httpx.post(url + path, content=body, timeout=30,
                          headers={"Host": f"{TENANT}.mlplatform.local", "content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["predictions"] if protocol == "v1" else out["outputs"]


def test_alert_rules_are_loaded_in_prometheus(cluster):
    """Every alert of the tenant's PrometheusRule, as the cluster holds it, is loaded by Prometheus."""
    proc = kubectl("-n", TENANT, "get", "prometheusrule", f"{TENANT}-alerts", "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    wanted = {r["alert"] for g in yaml.safe_load(proc.stdout)["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "MLPlatformFeatureDrift" in wanted
    with port_forward(V["NS_MONITORING"], "svc/kube-prometheus-stack-prometheus", 9090) as url:
        deadline = time.monotonic() + 180  # the operator reloads Prometheus after a rule changes
        while True:
            groups = httpx.get(url + "/api/v1/rules", params={"type": "alert"}, timeout=10).json()["data"]["groups"]
            loaded = {r["name"] for g in groups for r in g["rules"]}
            if wanted <= loaded or time.monotonic() > deadline:
                break
            time.sleep(5)
    assert wanted <= loaded, sorted(wanted - loaded)
