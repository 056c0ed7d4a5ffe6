"""The tenant chart's identities (charts/tenant/templates/identity.yaml, onboarding.yaml): one password
per identity, every copy of it the same, each pod given only its own Secret, every Secret a pod
names rendered beside it, and the onboarding run where the admins' Secrets are (docs/security.md)."""

from __future__ import annotations

import base64

import pytest
import yaml

from cluster_helpers import REPO_ROOT, tenant_files

TENANTS = [f"tenant/{p.parent.name}" for p in tenant_files()]


def _case(cases, name):
    return next(c for c in cases if c.name == name)


def _secrets(objects) -> dict[tuple[str, str], dict[str, str]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]):
            {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
            for o in objects if o["kind"] == "Secret"}


def _pods(objects):
    """(namespace, object name, pod spec, pod labels) of every workload and InferenceService predictor."""
    for o in objects:
        ns, name, spec = o["metadata"].get("namespace"), o["metadata"]["name"], o.get("spec", {})
        template = {"Deployment": lambda: spec["template"], "Job": lambda: spec["template"],
                    "CronJob": lambda: spec["jobTemplate"]["spec"]["template"]}.get(o["kind"])
        if template is not None:
            yield ns, name, template()["spec"], template()["metadata"].get("labels", {})
        elif o["kind"] == "InferenceService":
            yield ns, name, spec["predictor"], spec["predictor"].get("labels", {})


def _secret_refs(pod) -> set[str]:
    refs = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    for c in pod["containers"]:
        refs |= {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
        refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    return refs


@pytest.mark.parametrize("name", TENANTS)
def test_every_copy_of_a_password_is_the_same_and_each_identity_has_its_own(cases, name):
    case = _case(cases, name)
    t = case.release
    s = _secrets(case.objects)
    source = s[("mlplatform", f"{t}-identity")]
    assert set(source) == {"mlflow-trainer", "mlflow-predictor", "redis-reader", "redis-writer", "redis-stream", "postgres"}
    assert len(set(source.values())) == len(source) and all(len(v) == 32 for v in source.values())
    predictor, trainer = s[(t, f"{t}-predictor")], s[(t, f"{t}-trainer")]
    assert (predictor["MLFLOW_TRACKING_USERNAME"], predictor["MLFLOW_TRACKING_PASSWORD"]) == (f"{t}.predictor", source["mlflow-predictor"])
    assert (predictor["MLPLATFORM_REDIS_USERNAME"], predictor["MLPLATFORM_REDIS_PASSWORD"]) == (f"{t}.reader", source["redis-reader"])
    assert (trainer["MLFLOW_TRACKING_USERNAME"], trainer["MLFLOW_TRACKING_PASSWORD"]) == (f"{t}.trainer", source["mlflow-trainer"])
    # the rollout controller reads the shadow's agreement from the log the predictors write
    assert trainer["MLPLATFORM_PREDICTION_LOG"] == predictor["MLPLATFORM_PREDICTION_LOG"]
    for ns in ("kubeflow", t):  # KFP standalone runs pipelines in kubeflow; multi-user in the tenant's
        pipeline = s[(ns, f"{t}-pipeline")]
        assert (pipeline["MLPLATFORM_REDIS_USERNAME"], pipeline["MLPLATFORM_REDIS_PASSWORD"]) == (f"{t}.writer", source["redis-writer"])
        assert pipeline["MLFLOW_TRACKING_PASSWORD"] == source["mlflow-trainer"]
    if (t, f"{t}-stream") in s:
        assert s[(t, f"{t}-stream")]["MLPLATFORM_REDIS_PASSWORD"] == source["redis-stream"]
    from mlplatform.identity import sql_registry
    from sqlalchemy.engine import make_url

    own = make_url(predictor["MLPLATFORM_PREDICTION_LOG"])  # the tenant's own role, with its password
    assert (own.username, own.password, own.host) == (sql_registry.role(t), source["postgres"],
                                                      "postgres.mlplatform.svc.cluster.local")
    assert predictor["MLPLATFORM_FEAST_REGISTRY"] == predictor["MLPLATFORM_PREDICTION_LOG"]


@pytest.mark.parametrize("name", TENANTS)
def test_each_pod_reads_the_secret_of_its_identity_and_every_named_secret_is_rendered(cases, name):
    case = _case(cases, name)
    t = case.release
    platform = _secrets(_case(cases, "mlplatform/defaults").objects)
    rendered = set(_secrets(case.objects)) | set(platform)
    expected = {"predictor": f"{t}-predictor", "quality-job": f"{t}-predictor", "stream-worker": f"{t}-stream",
                "rollout": f"{t}-trainer"}
    seen = set()
    for ns, obj, pod, labels in _pods(case.objects):
        refs = _secret_refs(pod)
        missing = {r for r in refs if (ns, r) not in rendered}
        assert not missing, f"{obj} in {ns} names Secrets nobody renders there: {missing}"
        component = labels.get("mlplatform.io/component")
        if component in expected:
            assert refs == {expected[component]}, f"{obj}: {refs}"
            seen.add(component)
    assert {"predictor", "quality-job", "rollout"} <= seen, seen
    # the RayJob the train task creates in the tenant namespace: MLflow as the trainer
    from mlplatform.config import load_tenant
    from mlplatform.training.rayjob import build_rayjob

    path = next(p for p in tenant_files() if p.parent.name == name.split("/")[1])
    cluster = build_rayjob(load_tenant(path), "r1")["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]:
        assert _secret_refs(group["template"]["spec"]) == {f"{t}-trainer"}


def test_onboarding_runs_beside_the_admin_secrets_after_install_and_every_few_minutes(cases):
    case = _case(cases, "tenant/fraud")
    platform = _case(cases, "mlplatform/defaults")
    job = next(o for o in case.objects if o["kind"] == "Job" and o["metadata"]["name"] == "fraud-onboard")
    cron = next(o for o in case.objects if o["kind"] == "CronJob" and o["metadata"]["name"] == "fraud-onboard")
    assert job["metadata"]["namespace"] == cron["metadata"]["namespace"] == "mlplatform"
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod == cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] + c["args"][:2] == ["mlplatform", "onboard", "fraud"]
    assert _secret_refs(pod) == {"fraud-identity", "mlflow-admin", "redis-admin", "postgres-auth"}
    admins = {o["metadata"]["name"]: set(o["data"]) for o in platform.objects if o["kind"] == "Secret"}
    assert {"username", "password"} <= admins["mlflow-admin"] and {"username", "password"} <= admins["postgres-auth"]
    assert "password" in admins["redis-admin"]
    # the platform's NetworkPolicy lets exactly these pods reach the three services
    policy = next(o for o in platform.objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "onboarding")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert sorted(e["ports"][0]["port"] for e in policy["spec"]["egress"]) == [5000, 5432, 6379]


def test_the_pipelines_identity_comes_from_the_secret_its_parameter_names(cases):
    """The compiled IR maps the Secret's keys (kfp-kubernetes secretAsEnv with secretNameParameter)
    and the ConfigMap's; the tenant's pipeline Secret and both charts' ConfigMaps have exactly those."""
    from mlplatform.monitoring.kfp_submit import identity_secret

    ir = list(yaml.safe_load_all((REPO_ROOT / "pipelines" / "compiled" / "train_deploy.yaml").read_text()))
    executors = ir[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{t}" for t in ("ingest", "validate", "features", "stage", "train", "register")}
    case = _case(cases, "tenant/fraud")
    pipeline_keys = set(_secrets(case.objects)[("kubeflow", identity_secret("fraud"))])
    for name, config in executors.items():
        (secret,) = config["secretAsEnv"]
        assert secret["secretNameParameter"] == {"componentInputParameter": "identity_secret"}, name
        assert {k["secretKey"] for k in secret["keyToEnv"]} == pipeline_keys
        (cm,) = config["configMapAsEnv"]
        keys = {k["configMapKey"] for k in cm["keyToEnv"]}
        for chart_case, ns in (("tenant/fraud", "fraud"), ("mlplatform/defaults", "kubeflow")):
            (data,) = [o["data"] for o in _case(cases, chart_case).objects if o["kind"] == "ConfigMap"
                       and o["metadata"]["name"] == cm["configMapName"] and o["metadata"]["namespace"] == ns]
            assert set(data) == keys
    assert ir[0]["root"]["inputDefinitions"]["parameters"]["identity_secret"]["parameterType"] == "STRING"


def test_the_database_role_follows_the_tenants_slug(helm):
    """tenant.slug in Helm equals mlplatform.config.slug (a name with hyphens)."""
    from mlplatform.identity import sql_registry
    from mlplatform.verify import render
    from sqlalchemy.engine import make_url

    values = render.load_values(REPO_ROOT / "examples" / "fraud" / "tenant.yaml") | {"name": "card-fraud-2"}
    objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant", values, "card-fraud-2")
    (secret,) = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "card-fraud-2-predictor"]
    url = make_url(base64.b64decode(secret["data"]["MLPLATFORM_PREDICTION_LOG"]).decode())
    assert url.username == sql_registry.role("card-fraud-2") == "feast_card_fraud_2"
    assert url.database == "mlflow" and url.drivername == "postgresql+psycopg"


def test_an_explicit_registry_or_log_url_replaces_the_own_schema(helm):
    from mlplatform.verify import render

    values = render.load_values(REPO_ROOT / "examples" / "fraud" / "tenant.yaml")
    url = "postgresql+psycopg://feast@registry.example:5432/feast"
    values["cluster"] = {**values.get("cluster", {}), "feast_registry": url}
    objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant", values, "fraud")
    s = _secrets(objects)
    assert s[("fraud", "fraud-predictor")]["MLPLATFORM_FEAST_REGISTRY"] == url
    assert s[("kubeflow", "fraud-pipeline")]["MLPLATFORM_FEAST_REGISTRY"] == url
    assert s[("fraud", "fraud-predictor")]["MLPLATFORM_PREDICTION_LOG"].startswith("postgresql+psycopg://feast_fraud:")


def test_redis_requires_the_admin_password_from_its_mounted_secret(cases):
    """The default user's password is read from the mounted redis-admin Secret at start and by the
    probe (tests/topology runs this container and its probe as rendered)."""
    platform = _case(cases, "mlplatform/defaults")
    (deploy,) = [o for o in platform.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis"]
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["sh", "-c"]
    assert c["args"][0].startswith("""printf 'requirepass %s\\n' "$(cat /etc/redis-admin/password)" | exec redis-server - """)
    assert "REDISCLI_AUTH=" in c["readinessProbe"]["exec"]["command"][-1]
    assert {"name": "admin", "mountPath": "/etc/redis-admin", "readOnly": True} in c["volumeMounts"]
    assert {"name": "admin", "secret": {"secretName": "redis-admin"}} in pod["volumes"]
    assert not [e for e in c.get("env", []) if "valueFrom" in e]


def test_the_own_database_url_keeps_the_platform_databases_options(helm):
    """cluster.platform_database may carry connection options (sslmode=...): the tenant role's URL
    keeps them, so its pods connect as the onboarding does."""
    from mlplatform.verify import render

    values = render.load_values(REPO_ROOT / "examples" / "fraud" / "tenant.yaml")
    values["cluster"] = {**values.get("cluster", {}),
                         "platform_database": "postgresql+psycopg://db.example:5432/platform?sslmode=require"}
    objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant", values, "fraud")
    url = _secrets(objects)[("fraud", "fraud-predictor")]["MLPLATFORM_PREDICTION_LOG"]
    assert url.startswith("postgresql+psycopg://feast_fraud:") and url.endswith("@db.example:5432/platform?sslmode=require")
