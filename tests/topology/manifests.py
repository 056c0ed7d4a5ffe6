"""The containers the topology tests run, taken from what the cluster would run: the tenant and
platform charts rendered by the project's own Helm rendering (mlplatform.verify.render, Helm's Go
engine).

Everything the sandbox enforces for the predictor (securityContext, the /tmp emptyDir, the tenant
ConfigMap mounted read-only at /etc/mlplatform) comes from that rendered manifest
(charts/tenant/templates/_helpers.tpl, "tenant.predictor"), never from a list kept here."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from mlplatform import services
from mlplatform.verify import render
from tests.topology.sandbox import Container, Sandbox

REPO = Path(__file__).resolve().parents[2]
FRAUD_TENANT = REPO / "examples" / "fraud" / "tenant.yaml"


def rendered_tenant(values: dict[str, Any]) -> list[dict[str, Any]]:
    objects, _, _ = render.render(REPO / "charts" / "tenant", values, values["name"])
    return objects


def rendered_platform(values: dict[str, Any]) -> list[dict[str, Any]]:
    objects, _, _ = render.render(REPO / "charts" / "mlplatform", values, "mlplatform")
    return objects


def config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def secrets(objects: list[dict[str, Any]], namespace: str | None = None) -> dict[str, dict[str, str]]:
    """{Secret name: decoded data} of the render (in `namespace` when given), as pods read them."""
    import base64

    return {o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
            for o in objects if o["kind"] == "Secret" and namespace in (None, o["metadata"].get("namespace"))}


def pod_of(objects: list[dict[str, Any]], kind: str, name: str) -> tuple[dict, dict]:
    """(pod spec, its one container) of the Deployment or CronJob called `name`."""
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    template = obj["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else obj["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return template["spec"], container


def predictor_pod(objects: list[dict[str, Any]]) -> tuple[dict, dict, dict[str, dict[str, str]]]:
    """(pod spec, predictor container, {ConfigMap name: data}) of the stable InferenceService."""
    (isvc,) = [o for o in objects if o["kind"] == "InferenceService"
               and o["metadata"]["labels"].get("mlplatform.io/role") == "stable"]
    pod = isvc["spec"]["predictor"]
    (container,) = pod["containers"]
    return pod, container, config_maps(objects)


def service_hosts(env: dict[str, str], address: str = "127.0.0.1") -> dict[str, str]:
    """The hostnames of the services the settings name (MLflow, Redis, Feast's registry, the KFP API)
    -> `address`: in the sandbox the cluster's Service names resolve to this machine."""
    hosts = {}
    if "KFP_HOST" in env:
        hosts[urlsplit(env["KFP_HOST"]).hostname] = address
    if services.TRACKING in env:
        hosts[urlsplit(env[services.TRACKING]).hostname] = address
    if services.REDIS in env:
        hosts[env[services.REDIS].split(",")[0].rpartition(":")[0]] = address
    for url in (services.REGISTRY, services.PREDICTION_LOG, "MLPLATFORM_PLATFORM_DATABASE"):
        if env.get(url):
            hosts[urlsplit(env[url]).hostname] = address
    if env.get("MLPLATFORM_PUSHGATEWAY"):  # host:port or a URL
        gateway = env["MLPLATFORM_PUSHGATEWAY"]
        hosts[urlsplit(gateway if "://" in gateway else f"http://{gateway}").hostname] = address
    return {h: a for h, a in hosts.items() if h and h not in ("localhost", "127.0.0.1")}


def predictor(scratch: Path, values: dict[str, Any] | None = None,
              objects: list[dict[str, Any]] | None = None) -> tuple[Container, Sandbox]:
    """The predictor container of the tenant chart rendered with `values` (default: the fraud
    tenant file as it is), or of the render `objects` (the one whose passwords were onboarded: each
    render generates new ones), and a sandbox of its own under `scratch`."""
    if objects is None:
        objects = rendered_tenant(values if values is not None else render.load_values(FRAUD_TENANT))
    pod, spec, maps = predictor_pod(objects)
    container = Container.from_pod(pod, spec, scratch, maps, secrets=secrets(objects))
    return container, Sandbox(scratch, service_hosts(settings(container)))


def settings(container: Container) -> dict[str, str]:
    """The variables the container's `mlplatform` process runs with: its env and the files of its
    mounted identity Secret (mlplatform/identity/secret_files.py)."""
    from mlplatform.identity.secret_files import IDENTITY_DIR, load_identity

    mounted = [v.source for v in container.volumes if v.mount_path == container.env.get(IDENTITY_DIR)]
    env = dict(container.env) | ({IDENTITY_DIR: str(mounted[0])} if mounted else {})
    load_identity(env)  # as the container's `mlplatform` does, from the host's copy of the mount
    return env


CLUSTER_POSTGRES = "postgres.mlplatform.svc.cluster.local"
CLUSTER_MLFLOW = "mlflow.mlplatform.svc.cluster.local"  # the chart's mlflow server answers to it (--allowed-hosts)


def chart_values(tenant_file: Path, svc: services.Services, mlflow_url: str, port: int,
                 pushgateway_port: int | None = None, redis_port: int | None = None) -> dict:
    """The tenant file as chart values, pointed at this machine's services under the cluster's names:
    only the ports differ from a cluster's (and the database's name, this machine's). The Feast
    registry and the prediction log are the chart's default: the tenant's own role and schema in
    that database (identity.yaml)."""
    values = render.load_values(tenant_file)
    cluster = values.setdefault("cluster", {})
    if pushgateway_port is not None:
        cluster.setdefault("quality_job", {})["pushgateway"] = f"pushgateway.mlplatform.svc.cluster.local:{pushgateway_port}"
    cluster["mlflow_tracking_uri"] = f"http://{CLUSTER_MLFLOW}:{urlsplit(mlflow_url).port}"
    cluster["redis_address"] = f"redis.mlplatform.svc.cluster.local:{redis_port or svc.redis.rpartition(':')[2]}"
    url = make_url(svc.postgres)
    cluster["platform_database"] = f"{url.drivername}://{CLUSTER_POSTGRES}:{url.port or 5432}/{url.database}"
    values.setdefault("serving", {})["port"] = port
    return values
