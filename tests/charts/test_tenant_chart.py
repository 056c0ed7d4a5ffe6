"""What charts/tenant renders, checked for intent: isolation, least privilege, rollout wiring."""

from __future__ import annotations

import pytest

from cluster_helpers import REPO_ROOT, tenant_files

TENANTS = tenant_files()


def _case(cases, name):
    return next(c for c in cases if c.name == name)


def _by_kind(case, kind):
    return [o for o in case.objects if o["kind"] == kind]


@pytest.fixture(scope="module", params=["tenant/defaults"] + [f"tenant/{p.parent.name}" for p in TENANTS])
def tenant(request, cases):
    return _case(cases, request.param)


def test_everything_lives_in_the_tenant_namespace(tenant):
    """...but the tenant's onboarding (beside the admins' Secrets) and its pipeline identity (where
    KFP standalone runs pipeline pods): identity.yaml, onboarding.yaml."""
    name = tenant.release
    (ns,) = _by_kind(tenant, "Namespace")
    assert ns["metadata"]["name"] == name
    elsewhere = {("mlplatform", "Secret", f"{name}-identity"), ("mlplatform", "Job", f"{name}-onboard"),
                 ("mlplatform", "CronJob", f"{name}-onboard"), ("kubeflow", "Secret", f"{name}-pipeline")}
    for o in tenant.objects:
        key = (o["metadata"].get("namespace"), o["kind"], o["metadata"]["name"])
        if o["kind"] != "Namespace" and key not in elsewhere:
            assert o["metadata"]["namespace"] == name, o["kind"]
    assert elsewhere <= {(o["metadata"].get("namespace"), o["kind"], o["metadata"]["name"]) for o in tenant.objects}


def test_namespace_enforces_restricted_pod_security(tenant):
    (ns,) = _by_kind(tenant, "Namespace")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["mlplatform.io/tenant-namespace"] == "true"  # what the platform policies select


def test_default_deny_and_explicit_allows(tenant):
    policies = {p["metadata"]["name"]: p["spec"] for p in _by_kind(tenant, "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    assert {"allow-dns", "allow-gateway-and-scrape-to-predictors", "allow-platform-services", "allow-ray"} <= set(policies)


def test_every_role_is_least_privilege(tenant):
    """The pipeline runner's and (with canary and shadow on) the rollout controller's; the latter's
    every request is checked against its Role in test_rollout_controller.py."""
    roles = _by_kind(tenant, "Role")
    assert {r["metadata"]["name"] for r in roles} <= {f"{tenant.release}-pipeline-runner", f"{tenant.release}-rollout",
                                                       f"{tenant.release}-tenant-file-reader"}
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert "secrets" not in rule["resources"] and "pods" not in rule["resources"]
            if {"patch", "update"} & set(rule["verbs"]):
                assert rule.get("resourceNames"), "writes must be limited to the tenant's own objects"
                assert all(n.startswith(tenant.release) for n in rule["resourceNames"])


def test_the_platform_webhook_may_read_the_tenant_file_and_nothing_else(tenant, cases):
    """The webhook (charts/mlplatform) reads `<tenant>-tenant` through the API at each alert
    (mlplatform/monitoring/tenant_configmaps.py): that ConfigMap, `get` only, bound to its account."""
    from mlplatform.monitoring.tenant_configmaps import KEY, WEBHOOK_SERVICE_ACCOUNT, configmap_name

    name = tenant.release
    (role,) = [r for r in _by_kind(tenant, "Role") if r["metadata"]["name"] == f"{name}-tenant-file-reader"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [configmap_name(name)],
                              "verbs": ["get"]}]
    (configmap,) = [c for c in _by_kind(tenant, "ConfigMap") if c["metadata"]["name"] == configmap_name(name)]
    assert KEY in configmap["data"]
    (binding,) = [b for b in _by_kind(tenant, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]]
    platform = _case(cases, "mlplatform/defaults")
    (webhook,) = [o for o in platform.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "retrain-webhook"]
    pod = webhook["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == WEBHOOK_SERVICE_ACCOUNT
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": WEBHOOK_SERVICE_ACCOUNT,
                                    "namespace": webhook["metadata"]["namespace"]}]
    assert any(o["kind"] == "ServiceAccount" and o["metadata"]["name"] == WEBHOOK_SERVICE_ACCOUNT for o in platform.objects)
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-token"]
    assert mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"  # where load_incluster_config reads


def test_quota_and_limits_exist(tenant):
    (quota,) = _by_kind(tenant, "ResourceQuota")
    assert quota["spec"]["hard"]["services.loadbalancers"] == "0"
    assert _by_kind(tenant, "LimitRange")


def test_stable_route_without_rollout(cases):
    case = _case(cases, "tenant/defaults")  # canary and shadow off
    (route,) = _by_kind(case, "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert [b["weight"] for b in rule["backendRefs"]] == [100]
    assert "filters" not in rule
    assert len(_by_kind(case, "InferenceService")) == 1


def test_example_tenants_enable_canary_at_weight_0_and_shadow(cases):
    """The rollout backend needs both predictors; the canary gets traffic only when the rollout steps it."""
    for path in TENANTS:
        case = _case(cases, f"tenant/{path.parent.name}")
        name = case.release
        assert {o["metadata"]["name"] for o in _by_kind(case, "InferenceService")} == {
            name, f"{name}-canary", f"{name}-shadow"}
        (route,) = _by_kind(case, "HTTPRoute")
        (rule,) = route["spec"]["rules"]
        assert {b["name"]: b["weight"] for b in rule["backendRefs"]} == {
            f"{name}-predictor": 100, f"{name}-canary-predictor": 0}
        assert [f["requestMirror"]["backendRef"]["name"] for f in rule["filters"]] == [f"{name}-shadow-predictor"]


def test_canary_weights_and_shadow_mirror(cases):
    for path in TENANTS:
        case = _case(cases, f"tenant/{path.parent.name}+canary+shadow")
        name = case.release
        isvcs = {o["metadata"]["name"] for o in _by_kind(case, "InferenceService")}
        assert isvcs == {name, f"{name}-canary", f"{name}-shadow"}
        (route,) = _by_kind(case, "HTTPRoute")
        (rule,) = route["spec"]["rules"]
        weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
        assert sum(weights.values()) == 100 and weights[f"{name}-canary-predictor"] == 10
        (mirror,) = rule["filters"]
        assert mirror["type"] == "RequestMirror"
        assert mirror["requestMirror"]["backendRef"]["name"] == f"{name}-shadow-predictor"


def test_deployment_settings_are_passed_by_the_names_the_code_reads(cases):
    """The chart's predictor and the RayJob pass the settings by the names mlplatform.services
    defines once (the services profile sets the same), and only those."""
    from mlplatform import services
    from mlplatform.config import load_tenant
    from mlplatform.training.rayjob import build_rayjob

    settings = set(services.SETTINGS)
    case = _case(cases, "tenant/defaults")
    (isvc,) = _by_kind(case, "InferenceService")
    (c,) = isvc["spec"]["predictor"]["containers"]
    spec = build_rayjob(load_tenant(REPO_ROOT / "examples" / "fraud" / "tenant.yaml"), "r1")["spec"]
    ray_env = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    for env, needs in ((c["env"], {services.TRACKING, services.ONLINE_STORE, services.REDIS}),
                       (ray_env, {services.TRACKING})):  # training reads only MLflow (the staged run)
        names = {e["name"] for e in env}
        deployment = {n for n in names if n.startswith(("MLFLOW_", "MLPLATFORM_FEAST", "MLPLATFORM_REDIS"))}
        assert deployment <= settings, deployment - settings
        assert needs <= names


def test_predictor_keeps_its_workspace_on_a_writable_volume(cases):
    """readOnlyRootFilesystem: the workspace (Feast's repo file, caches) must be on a volume the
    container mounts writable (tests/topology runs the container and would fail otherwise)."""
    (isvc,) = _by_kind(_case(cases, "tenant/defaults"), "InferenceService")
    (c,) = isvc["spec"]["predictor"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(env["MLPLATFORM_HOME"].startswith(path.rstrip("/") + "/") for path in writable), (env, writable)


def test_predictor_runs_the_tenant_with_its_alias(cases):
    case = _case(cases, "tenant/defaults")
    (isvc,) = _by_kind(case, "InferenceService")
    (c,) = isvc["spec"]["predictor"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert c["args"] == ["serve", case.release]
    assert env["MLPLATFORM_MODEL_ALIAS"] == "champion" and env["MLPLATFORM_ROLE"] == "stable"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


def test_servicemonitor_selects_the_tenant_predictors(tenant):
    (sm,) = [o for o in _by_kind(tenant, "ServiceMonitor") if o["metadata"]["name"] == f"{tenant.release}-predictors"]
    (expr,) = sm["spec"]["selector"]["matchExpressions"]
    assert expr["key"] == "serving.kserve.io/inferenceservice" and tenant.release in expr["values"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_notes_tell_what_to_do_next(tenant):
    assert "kubectl" in tenant.notes and tenant.release in tenant.notes


def test_platform_chart_toggles(helm, repo_root):
    from mlplatform.verify import render

    objects, _, _ = render.render(repo_root / "charts" / "mlplatform", {"redis": {"enabled": False},
                                  "webhook": {"enabled": False}}, "mlplatform")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "mlflow") in names and ("StatefulSet", "postgres") in names
    assert ("Deployment", "redis") not in names and ("Deployment", "retrain-webhook") not in names


def test_stream_worker_is_rendered_for_a_streaming_tenant_only(cases):
    """A tenant with features.stream gets the worker: its own ServiceAccount, PSS-restricted pod,
    egress to Redis only (DNS via allow-dns), ingress from monitoring to the metrics port, a
    ServiceMonitor that selects its Service; settings passed by the names mlplatform.services defines."""
    from mlplatform import services
    from mlplatform.config import load_tenant

    assert not [o for o in _case(cases, "tenant/defaults").objects if "stream-worker" in o["metadata"]["name"]]
    cfg = load_tenant(REPO_ROOT / "examples" / "fraud" / "tenant.yaml")
    case = _case(cases, "tenant/fraud")
    name, port = case.release, cfg.features.stream.metrics_port
    (dep,) = [o for o in _by_kind(case, "Deployment") if o["metadata"]["name"] == f"{name}-stream-worker"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["serviceAccountName"] == f"{name}-stream-worker" and pod["automountServiceAccountToken"] is False
    assert f"{name}-stream-worker" in {o["metadata"]["name"] for o in _by_kind(case, "ServiceAccount")}
    assert c["args"] == ["stream", name, "--metrics-port", str(port)]
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e["value"] for e in c["env"]}
    assert {k for k in env if k.startswith("MLPLATFORM_") and k not in ("MLPLATFORM_TENANT_FILE", "MLPLATFORM_HOME",
                                                                        "MLPLATFORM_IDENTITY_DIR")} \
        <= set(services.SETTINGS)
    assert env[services.STREAM_REDIS] == f"redis://{cfg.cluster.redis_address}/0"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (policy,) = [p["spec"] for p in _by_kind(case, "NetworkPolicy") if p["metadata"]["name"] == "allow-stream-worker"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    (egress,) = policy["egress"]
    assert egress["ports"] == [{"protocol": "TCP", "port": int(cfg.cluster.redis_address.rsplit(":", 1)[1])},
                               {"protocol": "TCP", "port": 5432}]  # Redis; the tenant's Feast registry
    assert egress["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": cfg.cluster.namespaces.platform}}}]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": port}]
    # no other policy lets the worker out (allow-platform-services selects predictor and training only)
    for other in _by_kind(case, "NetworkPolicy"):
        sel = other["spec"]["podSelector"]
        if other["metadata"]["name"] not in ("allow-stream-worker", "default-deny", "allow-dns") and "Egress" in other["spec"]["policyTypes"]:
            values = [v for e in sel.get("matchExpressions", []) for v in e["values"]] + list(sel.get("matchLabels", {}).values())
            assert "stream-worker" not in values, other["metadata"]["name"]

    (svc,) = [o for o in _by_kind(case, "Service") if o["metadata"]["name"] == f"{name}-stream-worker"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (sm,) = [o for o in _by_kind(case, "ServiceMonitor") if o["metadata"]["name"] == f"{name}-stream-worker"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"


@pytest.mark.parametrize("address, url, port", [
    ("redis.mlplatform.svc:6379", "redis://redis.mlplatform.svc:6379/0", 6379),
    ("redis.mlplatform.svc:6380,db=3", "redis://redis.mlplatform.svc:6380/3", 6380),
    ("redis.mlplatform.svc:6379, ssl=true,password=p@ss", "rediss://:p%40ss@redis.mlplatform.svc:6379/0", 6379)])
def test_stream_url_and_port_read_feast_connection_string_options(helm, address, url, port):
    """cluster.redis_address is Feast's connection string: its options are not part of the port, and
    the stream's URL carries the same database, TLS and password as Feast's client (services.redis_url)."""
    from mlplatform import services
    from mlplatform.verify import render

    values = render.load_values(REPO_ROOT / "examples" / "fraud" / "tenant.yaml")
    objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant",
                                  {**values, "cluster": {**values.get("cluster", {}), "redis_address": address}}, "fraud")
    (dep,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-stream-worker")]
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    configmaps = [o["data"] for o in objects if o["kind"] == "ConfigMap" and services.STREAM_REDIS in o.get("data", {})]
    assert env[services.STREAM_REDIS] == url == services.redis_url(address)
    assert configmaps and all(c[services.STREAM_REDIS] == url for c in configmaps)
    (policy,) = [o["spec"] for o in objects if o["kind"] == "NetworkPolicy"
                 and o["metadata"]["name"] == "allow-stream-worker"]
    assert policy["egress"][0]["ports"] == [{"protocol": "TCP", "port": port}, {"protocol": "TCP", "port": 5432}]


def test_stream_worker_can_be_turned_off(helm):
    from mlplatform.verify import render

    values = render.load_values(REPO_ROOT / "examples" / "fraud" / "tenant.yaml")
    cluster = {**values.get("cluster", {}), "stream_worker": {"enabled": False}}
    objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant", {**values, "cluster": cluster}, "fraud")
    assert not [o for o in objects if "stream-worker" in o["metadata"]["name"]]
    assert any(o["kind"] == "PrometheusRule" for o in objects)


def test_freshness_alerts_take_the_slo_from_the_tenant_file_or_the_config_default(helm):
    """The chart's fallback for a tenant file that leaves features.stream.freshness_slo_seconds out
    is StreamConfig's default; a tenant without features.stream gets no freshness group."""
    import copy

    from mlplatform.config import StreamConfig, load_tenant
    from mlplatform.verify import render

    path = REPO_ROOT / "examples" / "fraud" / "tenant.yaml"
    values = render.load_values(path)

    def freshness(vals):
        objects, _, _ = render.render(REPO_ROOT / "charts" / "tenant", vals, "fraud")
        (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
        return {r["alert"]: r["expr"] for g in rule["spec"]["groups"] if g["name"].endswith("-freshness")
                for r in g["rules"] if "alert" in r}

    slo = load_tenant(path).features.stream.freshness_slo_seconds
    assert freshness(values)["MLPlatformFeaturesStale"].endswith(f"> {slo:g}")
    unset = copy.deepcopy(values)
    del unset["features"]["stream"]["freshness_slo_seconds"]
    default = StreamConfig.model_fields["freshness_slo_seconds"].default
    assert freshness(unset)["MLPlatformStreamBacklog"].endswith(f"> {default:g}")
    assert default != slo  # otherwise the fallback would go unseen
    none = copy.deepcopy(values)
    del none["features"]["stream"]
    assert freshness(none) == {}
