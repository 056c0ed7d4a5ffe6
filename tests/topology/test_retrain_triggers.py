"""What starts a retraining run on a cluster, each run as its pod would run it (tests/topology/sandbox.py):
the tenant chart's retrain CronJob container and the platform chart's webhook Deployment, from their
rendered manifests (command, args, env, mounts, securityContext), against a local endpoint that
STANDS IN FOR THE KFP API SERVER (tests/monitoring/kfp_api_standin.py: no KFP API server can run here;
it parses every body with kfp_server_api's own models and rejects what the server would). The
containers reach it under the cluster's Service name, which the sandbox's /etc/hosts maps here. The
webhook also reads each tenant's file through the Kubernetes API: an HTTPS stand-in for the API
server (tests/topology/kube_api_standin.py) authenticates its projected token and authorizes by
the RBAC objects the charts render.

Both read the compiled pipeline where the image has it (/app/pipelines/compiled, the Dockerfile's
COPY) and write nothing but their /tmp emptyDir (read-only root)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from mlplatform.processes import free_port
from mlplatform.verify import render
from tests.monitoring.kfp_api_standin import KfpApiStandIn
from tests.monitoring.test_webhook import alert, payload
from tests.monitoring.test_webhook_kfp import assert_is_compiled_train_deploy
from tests.conftest import require
from tests.topology.manifests import (CLUSTER_POSTGRES, FRAUD_TENANT, config_maps, pod_of, rendered_platform,
                                      rendered_tenant, secrets, service_hosts, settings)
from tests.topology.kube_api_standin import HOST, KubeApiStandIn
from tests.topology.sandbox import ApiAccess, Container, Sandbox

pytestmark = pytest.mark.usefixtures("can_sandbox")

KFP_SERVICE = "ml-pipeline.kubeflow.svc.cluster.local"  # KFP standalone's API Service (namespace kubeflow)


@pytest.fixture
def kfp_api():
    server = KfpApiStandIn().start()
    yield server
    server.stop()


def kfp_host(server: KfpApiStandIn) -> str:
    """The stand-in under the cluster's Service name (its port is the only difference)."""
    return f"http://{KFP_SERVICE}:{server.server.port}"


def created_runs(server: KfpApiStandIn) -> list:
    return [body for method, what, body in server.calls if (method, what) == ("POST", "runs")]


def test_the_tenants_retrain_cronjob_starts_a_run_with_the_tenant_file_the_cluster_holds(tmp_path, kfp_api):
    values = render.load_values(FRAUD_TENANT)
    values["cluster"]["kfp_host"] = kfp_host(kfp_api)
    objects = rendered_tenant(values)
    pod, spec = pod_of(objects, "CronJob", f"{values['name']}-retrain")
    maps = config_maps(objects)
    container = Container.from_pod(pod, spec, tmp_path / "trigger", maps)
    assert container.uid == 10001 and {v.mount_path for v in container.volumes} == {"/tmp", "/etc/mlplatform"}

    done = Sandbox(tmp_path / "trigger", service_hosts(container.env)).run(container, timeout=300)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    (create,) = created_runs(kfp_api)
    assert f"started run {create.run_id}" in done.stdout
    (experiment,) = kfp_api.experiments.values()
    assert experiment.display_name == values["name"] == create.display_name.removesuffix("-scheduled-retrain")
    assert create.experiment_id == experiment.experiment_id
    # the run's tenant is the ConfigMap the tenant chart installed, not a file baked into the image
    assert create.runtime_config.parameters == {"tenant": maps[f"{values['name']}-tenant"]["tenant.yaml"],
                                                "identity_secret": f"{values['name']}-pipeline"}  # identity.yaml's
    assert_is_compiled_train_deploy(create.pipeline_spec)


def tenant_objects(name: str) -> tuple[list[dict], str]:
    """The fraud tenant chart installed under another name (one the image has no file for), and the
    tenant file its ConfigMap holds."""
    values = render.load_values(FRAUD_TENANT)
    values["name"] = name
    objects = rendered_tenant(values)
    return objects, config_maps(objects)[f"{name}-tenant"]["tenant.yaml"]


def start_webhook(tmp_path, kfp_api, kube_api) -> tuple[subprocess.Popen, Container, str]:
    port = free_port()
    command = rendered_platform({})  # the chart's default command, with a port free on this machine
    _, default = pod_of(command, "Deployment", "retrain-webhook")
    argv = [*default["command"][:-1], str(port)]
    assert default["command"][-2] == "--port"
    objects = rendered_platform({"webhook": {"port": port, "command": argv, "kfp_host": kfp_host(kfp_api)}})
    kube_api.objects += objects
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "retrain-webhook"]
    pod, spec = pod_of(objects, "Deployment", "retrain-webhook")
    namespace = deployment["metadata"]["namespace"]
    # what the kubelet does for this pod: a token bound to its ServiceAccount, the cluster's CA
    api = ApiAccess(HOST, kube_api.port, kube_api.issue_token(namespace, pod["serviceAccountName"]), namespace)
    maps = config_maps(objects) | {"kube-root-ca.crt": {"ca.crt": kube_api.ca_pem}}
    container = Container.from_pod(pod, spec, tmp_path / "webhook", maps, api=api)
    assert {v.mount_path for v in container.volumes} == {"/tmp", "/var/run/secrets/kubernetes.io/serviceaccount"}
    box = Sandbox(tmp_path / "webhook", service_hosts(container.env))
    return box.start(container, tmp_path / "webhook.log"), container, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, process, log) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the webhook exited with {process.returncode}:\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the webhook did not answer within 120 s:\n{log.read_text()[-4000:]}")


def test_the_platform_webhook_turns_an_alert_into_a_kfp_run_with_the_tenant_file_the_cluster_holds(tmp_path, kfp_api):
    installed, text = tenant_objects("acme-fraud")
    unbound, _ = tenant_objects("old-chart")  # installed by a chart before the webhook's Role
    unbound = [o for o in unbound if not (o["kind"] == "RoleBinding" and o["roleRef"]["name"].endswith("-file-reader"))]
    lost, _ = tenant_objects("lost-file")  # its ConfigMap deleted by hand
    lost = [o for o in lost if not (o["kind"] == "ConfigMap" and o["metadata"]["name"] == "lost-file-tenant")]
    kube_api = KubeApiStandIn(installed + unbound + lost, tmp_path / "kube-api").start()
    process, container, url = start_webhook(tmp_path, kfp_api, kube_api)
    log = tmp_path / "webhook.log"
    try:
        wait_healthy(url, process, log)
        answer = httpx.post(f"{url}/alerts", json=payload(alert(fp="a1", tenant="acme-fraud"),
                                                           alert(fp="a2", tenant="acme-fraud")), timeout=60)
        assert answer.status_code == 200, answer.text
        assert [r["outcome"] for r in answer.json()["results"]] == ["started", "active"]
        counted = ('mlplatform_webhook_alerts_total{alertname="MLPlatformFeatureDrift",outcome="started",'
                   'tenant="acme-fraud"} 1.0')
        assert counted in httpx.get(f"{url}/metrics").text
        # not installed (the API authorizes first: 403) or no RoleBinding: retraining off, visibly;
        # the Role but no ConfigMap: 404, not a tenant of this cluster
        answer = httpx.post(f"{url}/alerts", json=payload(alert(fp="b1", tenant="fraud"), alert(fp="c1", tenant="old-chart"),
                                                           alert(fp="d1", tenant="lost-file")), timeout=60)
        results = answer.json()["results"]
        assert [r["outcome"] for r in results] == ["error:invalid-tenant-file", "error:invalid-tenant-file",
                                                   "ignored:unknown-tenant"], results
        assert "may not read ConfigMap old-chart/old-chart-tenant (403" in results[1]["error"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlplatform_webhook_tenant_file_valid{tenant="old-chart"} 0.0' in metrics
        assert 'mlplatform_webhook_tenant_file_valid{tenant="fraud"} 0.0' in metrics
    finally:
        process.terminate()
        process.wait(timeout=30)
        kube_api.stop()
    webhook_user = "system:serviceaccount:mlplatform:retrain-webhook"
    assert (webhook_user, "acme-fraud", "acme-fraud-tenant", 200) in kube_api.calls
    assert {(c[1], c[3]) for c in kube_api.calls} == {("acme-fraud", 200), ("fraud", 403), ("old-chart", 403),
                                                      ("lost-file", 404)}
    (create,) = created_runs(kfp_api)
    assert kfp_api.experiments[create.experiment_id].display_name == "acme-fraud"
    assert_is_compiled_train_deploy(create.pipeline_spec)  # read from /app, where the image ships it
    # the run's tenant is the file the tenant chart installed, read through the API
    assert create.runtime_config.parameters == {"tenant": text, "run_id": create.runtime_config.parameters["run_id"],
                                                "identity_secret": "acme-fraud-pipeline"}
    assert create.runtime_config.parameters["run_id"].startswith("retrain-")
    # nothing but its /tmp emptyDir was writable, and the webhook kept its record in KFP, not there
    (scratch,) = [v.source for v in container.volumes if v.mount_path == "/tmp"]
    assert not list(scratch.rglob("state.json"))


@pytest.mark.service
def test_the_quality_cronjob_before_any_logged_prediction_fails_loudly_and_pushes_nothing(tmp_path):
    """The tenant's quality CronJob as rendered, reading the prediction log in the tenant's own schema
    as its role (the chart's default, the role as its onboarding creates it) before any predictor
    has logged: it must fail with the reason rather than push a fresh timestamp over no measurement
    (MLPlatformQualityJobStale then fires). With logged predictions it measures and pushes:
    tests/topology/test_pipeline.py."""
    import uuid

    from sqlalchemy.engine import make_url

    from mlplatform import services
    from mlplatform.identity import sql_registry

    svc = services.Services.from_env()
    require(services.reachable(services.postgres_address(svc.postgres)), f"PostgreSQL is not reachable ({svc.postgres})")
    values = render.load_values(FRAUD_TENANT) | {"name": f"qj-{uuid.uuid4().hex[:6]}"}
    url = make_url(svc.postgres)
    values["cluster"] = {**values.get("cluster", {}),
                         "platform_database": f"{url.drivername}://{CLUSTER_POSTGRES}:{url.port or 5432}/{url.database}"}
    objects = rendered_tenant(values)
    pod, spec = pod_of(objects, "CronJob", f"{values['name']}-quality")
    container = Container.from_pod(pod, spec, tmp_path / "quality", config_maps(objects), secrets=secrets(objects))
    assert container.argv == ["mlplatform", "quality-job", "/etc/mlplatform/tenant.yaml"]
    sql_registry.provision(svc.postgres, values["name"])  # what the onboarding Job does
    try:
        done = Sandbox(tmp_path / "quality", service_hosts(settings(container))).run(container, timeout=300)
    finally:
        sql_registry.drop(svc.postgres, values["name"])
    assert done.returncode == 2, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    message = " ".join(done.stderr.split())
    assert f"no logged predictions for {values['name']}" in message and "nothing pushed" in message, message
