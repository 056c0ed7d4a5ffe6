"""The HTTPRoute the platform patches is one KServe v0.20 leaves alone, and its patched canary
weights and mirror are valid Gateway API objects.

What KServe v0.20.0 reconciles (Standard mode, Gateway API; install/kserve.sh sets enableGatewayApi):
- pkg/controller/v1beta1/inferenceservice/reconcilers/factory.go, CreateIngressReconciler (l.120):
  Standard + EnableGatewayAPI -> ingress.NewRawHTTPRouteReconciler.
- pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/httproute_reconciler.go, Reconcile
  (l.1023): with the InferenceService label networking.kserve.io/visibility=cluster-local
  (pkg/constants/constants.go l.187-188: NetworkVisibility, ClusterLocalVisibility) it reconciles no
  HTTPRoute and marks IngressReady true; otherwise reconcilePredictorHTTPRoute (l.696, name
  PredictorServiceName(isvc, predictor name): "<isvc>-predictor" or "<isvc>-<name>-predictor",
  constants.go l.799), reconcileTransformerHTTPRoute (l.759, "<isvc>-transformer", with a
  transformer), reconcileExplainerHTTPRoute (l.819, "<isvc>-explainer", with an explainer) and
  reconcileTopLevelHTTPRoute (l.879, "<isvc>"). Each Gets the route by that name, whoever made it,
  makes the InferenceService its controller (SetControllerReference) and Updates it whenever spec,
  labels or annotations differ (semanticHttpRouteEquals, l.675).
- pkg/controller/v1beta1/inferenceservice/controller.go l.714: Owns(&gwapiv1.HTTPRoute{}): a change
  to an HTTPRoute triggers a reconcile only when an InferenceService controls it.
"""

from __future__ import annotations

from cluster_helpers import tenant_files
from mlplatform.config import load_tenant
from mlplatform.rollout.backends import KubernetesBackend, route_name
from mlplatform.rollout.state import RolloutState
from mlplatform.verify.schemas import validate_object
from tests.rollout.test_kubernetes_backend import RecordingApi, merge

PHASES = [("idle", 0), ("shadow", 0), ("canary", 10), ("canary", 50), ("promoted", 0), ("rolled_back", 0)]


def kserve_routes(isvc: dict, honour_visibility: bool = True) -> set[str]:
    """Names of the HTTPRoutes KServe v0.20 reconciles for this InferenceService (see above)."""
    meta, spec = isvc["metadata"], isvc["spec"]
    if honour_visibility and meta.get("labels", {}).get("networking.kserve.io/visibility") == "cluster-local":
        return set()
    name, predictor = meta["name"], spec["predictor"].get("name")
    names = {name, f"{name}-{predictor}-predictor" if predictor else f"{name}-predictor"}
    names |= {f"{name}-transformer"} if spec.get("transformer") else set()
    names |= {f"{name}-explainer"} if spec.get("explainer") else set()
    return names


def _tenant_cases(cases):
    files = {p.parent.name: p for p in tenant_files()}
    for case in cases:
        if case.chart == "tenant" and case.release in files:
            yield case, load_tenant(files[case.release])


def _patches(cfg) -> list[tuple]:
    api = RecordingApi()
    backend = KubernetesBackend(cfg, api=api)
    for phase, weight in PHASES:
        backend.apply(RolloutState(cfg.name, phase=phase, weight=weight, stable_version="3", challenger_version="4"))
    return api.calls


def _of_kind(case, kind):
    return {o["metadata"]["name"]: o for o in case.objects if o["kind"] == kind}


def test_kserve_reconciles_no_route_of_a_tenant(cases):
    seen = 0
    for case, cfg in _tenant_cases(cases):
        isvcs = _of_kind(case, "InferenceService")
        assert isvcs and all(kserve_routes(i) == set() for i in isvcs.values()), case.name
        seen += 1
    assert seen == 2 * len(tenant_files())  # each tenant file as is and with canary+shadow


def test_the_patched_route_is_the_charts_and_not_one_kserve_would_take(cases):
    for case, cfg in _tenant_cases(cases):
        routes, isvcs = _of_kind(case, "HTTPRoute"), _of_kind(case, "InferenceService")
        patched = {(c[1], c[3]) for c in _patches(cfg) if c[2] == "httproutes"}
        assert patched == {(cfg.name, route_name(cfg.name))}, case.name
        (route,) = routes.values()
        assert route["metadata"]["name"] == route_name(cfg.name)
        assert route["metadata"]["namespace"] == cfg.name and "ownerReferences" not in route["metadata"]
        # even were the InferenceServices not cluster-local, no name KServe derives is this one
        derived = set().union(*(kserve_routes(i, honour_visibility=False) for i in isvcs.values()))
        assert route_name(cfg.name) not in derived, (case.name, sorted(derived))
        # the InferenceServices the backend patches are the chart's
        assert {c[3] for c in _patches(cfg) if c[2] == "inferenceservices"} <= set(isvcs)


def test_weights_and_mirror_validate_against_the_gateway_api_crds(cases, crds, k8s_version):
    for case, cfg in _tenant_cases(cases):
        (route,) = _of_kind(case, "HTTPRoute").values()
        assert validate_object(route, k8s_version, crds) == [], case.name
        services = {f"{n}-predictor" for n in _of_kind(case, "InferenceService")}  # KServe's Service names
        for phase, weight in PHASES:
            api = RecordingApi()
            KubernetesBackend(cfg, api=api).apply(RolloutState(cfg.name, phase=phase, weight=weight))
            (body,) = [c[4] for c in api.calls if c[2] == "httproutes"]
            patched = merge(route, body)
            assert validate_object(patched, k8s_version, crds) == [], (case.name, phase)
            (rule,) = patched["spec"]["rules"]
            weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
            assert sum(weights.values()) == 100 and weights[f"{cfg.name}-canary-predictor"] == (
                weight if phase == "canary" else 0)
            mirrors = [f["requestMirror"]["backendRef"]["name"] for f in rule.get("filters", [])]
            assert mirrors == ([f"{cfg.name}-shadow-predictor"] if phase == "shadow" else [])
            assert set(weights) | set(mirrors) <= services, (case.name, phase)
            assert patched["spec"]["hostnames"] == route["spec"]["hostnames"]  # the patch keeps the host


def test_the_rollout_role_allows_each_patch_and_no_other_route(cases):
    """tests/charts/test_rollout_controller.py checks every request of the controller at the wire;
    this one keeps the route rule to the one route KServe leaves alone, in that Role only."""
    for case, cfg in _tenant_cases(cases):
        roles = [o for o in case.objects if o["kind"] == "Role"]
        route_rules = [(r["metadata"]["name"], rule) for r in roles for rule in r["rules"] if "httproutes" in rule["resources"]]
        if not (cfg.cluster.canary.enabled and cfg.cluster.shadow.enabled or "+canary+shadow" in case.name):
            assert route_rules == [], case.name  # no controller, no account that may patch the route
            continue
        assert [name for name, _ in route_rules] == [f"{cfg.name}-rollout"], case.name
        (role,) = [r for r in roles if r["metadata"]["name"] == f"{cfg.name}-rollout"]
        for group_version, namespace, plural, name, _ in _patches(cfg):
            group = group_version.split("/")[0]
            assert namespace == role["metadata"]["namespace"]
            assert any(group in r["apiGroups"] and plural in r["resources"] and "patch" in r["verbs"]
                       and name in r.get("resourceNames", [name]) for r in role["rules"]), (case.name, plural, name)
        assert route_rules[0][1]["resourceNames"] == [route_name(cfg.name)]
