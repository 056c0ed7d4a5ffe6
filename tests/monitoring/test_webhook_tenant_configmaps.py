"""The retraining webhook in cluster mode takes each tenant's file from the ConfigMap its chart
installed (mlplatform/monitoring/tenant_configmaps.py), so an alert for any installed tenant starts
a run with the configuration the cluster holds, not a copy baked into the image.

NO CLUSTER: the real Kubernetes client talks to tests/rollout/k8s_wire.py (ConfigMaps answered from
a dict at the client's HTTP pool), and runs are created through the real kfp.Client against the KFP
API stand-in (tests/monitoring/kfp_api_standin.py). The same path over HTTPS, with the chart's RBAC
enforced, runs in the sandbox: tests/topology/test_retrain_triggers.py."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from starlette.testclient import TestClient

from mlplatform.monitoring.kfp_submit import cluster_controller_args
from mlplatform.monitoring.tenant_configmaps import KEY, TenantConfigMaps, configmap_name
from mlplatform.monitoring.webhook import create_app
from mlplatform.processes import free_port
from mlplatform.workspace import Workspace
from tests.conftest import write_small_fraud_tenant
from tests.monitoring.kfp_api_standin import KfpApiStandIn
from tests.monitoring.test_webhook import alert, payload
from tests.monitoring.test_webhook_kfp import COMPILED
from tests.rollout.k8s_wire import Wire

TENANT = "acme-fraud"  # a tenant the image knows nothing of: no examples/acme-fraud anywhere


@pytest.fixture
def kfp_api():
    server = KfpApiStandIn().start()
    yield server
    server.stop()


def tenant_text(tmp_path) -> str:
    path = write_small_fraud_tenant(tmp_path / "source")
    raw = yaml.safe_load(path.read_text())
    raw["name"] = TENANT
    return yaml.safe_dump(raw, sort_keys=False)


def install(wire: Wire, tenant: str, data: dict) -> None:
    wire.put_configmap({"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                        "metadata": {"name": configmap_name(tenant), "namespace": tenant}})


def webhook(tmp_path, kfp_host: str, api_factory) -> TestClient:
    args = cluster_controller_args({"KFP_HOST": kfp_host, "PIPELINE_PACKAGE": str(COMPILED)})
    resolve = TenantConfigMaps(tmp_path / "scratch", api_factory=api_factory)
    return TestClient(create_app(Workspace(tmp_path / "home"), resolve_tenant=resolve, **args))


def test_an_alert_for_an_installed_tenant_runs_with_the_file_its_configmap_holds(tmp_path, kfp_api):
    wire, text = Wire(), tenant_text(tmp_path)
    install(wire, TENANT, {KEY: text})
    with webhook(tmp_path, kfp_api.url, lambda: client.CoreV1Api(wire.api_client())) as hook:
        r = hook.post("/alerts", json=payload(alert(fp="a1", tenant=TENANT)))
        assert r.status_code == 200 and [x["outcome"] for x in r.json()["results"]] == ["started"], r.text
    (run,) = kfp_api.runs.values()
    assert run.runtime_config.parameters["tenant"] == text
    assert [(c.verb, c.resource, c.namespace, c.name) for c in wire.calls] == [
        ("get", "configmaps", TENANT, f"{TENANT}-tenant")]  # its own namespace, that one object, read only


def test_no_configmap_is_an_unknown_tenant_and_a_configmap_without_the_file_turns_retraining_off_visibly(tmp_path, kfp_api):
    wire = Wire()
    install(wire, "broken", {"other.yaml": "x"})
    with webhook(tmp_path, kfp_api.url, lambda: client.CoreV1Api(wire.api_client())) as hook:
        r = hook.post("/alerts", json=payload(alert(fp="a1", tenant="nobody"), alert(fp="b1", tenant="broken")))
        results = r.json()["results"]
        assert [x["outcome"] for x in results] == ["ignored:unknown-tenant", "error:invalid-tenant-file"]
        assert f"ConfigMap broken/broken-tenant has no key '{KEY}'" in results[1]["error"]
        assert 'mlplatform_webhook_tenant_file_valid{tenant="broken"} 0.0' in hook.get("/metrics").text
    assert kfp_api.runs == {}


def test_the_api_server_away_is_a_503_so_alertmanager_sends_again(tmp_path, kfp_api):
    def unreachable():
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{free_port()}"  # nobody listens there
        configuration.retries = 0
        return client.CoreV1Api(client.ApiClient(configuration))

    with webhook(tmp_path, kfp_api.url, unreachable) as hook:
        r = hook.post("/alerts", json=payload(alert(fp="a1", tenant=TENANT)))
        assert r.status_code == 503 and "Kubernetes API: reading ConfigMap" in r.json()["error"], r.text
        assert hook.get("/metrics").status_code == 200  # a scrape while the API is away still answers
    assert kfp_api.runs == {}
