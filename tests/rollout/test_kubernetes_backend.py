"""The cluster backend's patches: recorded (no cluster), applied to the chart's rendered objects
and validated against the pinned Gateway API and KServe CRD schemas."""

from __future__ import annotations

import copy

import pytest

from mlplatform.config import load_tenant
from mlplatform.rollout.backends import VERSION_ANNOTATION, KubernetesBackend
from mlplatform.rollout.state import RolloutState
from mlplatform.verify.schemas import CrdIndex, crds_dir, kubernetes_version, validate_object

from tests.conftest import REPO

CFG = load_tenant(REPO / "examples" / "fraud" / "tenant.yaml")


class RecordingApi:
    """Stands in for kubernetes.client.CustomObjectsApi: records what would be sent."""

    def __init__(self):
        self.calls = []

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append((f"{group}/{version}", namespace, plural, name, copy.deepcopy(body)))


def merge(target, patch):
    """RFC 7386 JSON merge patch (what the API server applies for application/merge-patch+json)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def base_route():
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "fraud-route", "namespace": "fraud"},
            "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": "kserve-ingress-gateway", "namespace": "kserve"}],
                     "hostnames": ["fraud.mlplatform.local"], "rules": []}}


@pytest.fixture(scope="module")
def crds():
    directory = crds_dir(REPO)
    if not directory.is_dir():
        pytest.skip(f"no CRDs at {directory}")
    return CrdIndex.load(directory)


def state(phase, weight=0):
    return RolloutState("fraud", phase=phase, weight=weight, stable_version="3", challenger_version="4")


@pytest.mark.parametrize("phase,weight", [("shadow", 0), ("canary", 10), ("canary", 50), ("promoted", 0),
                                          ("rolled_back", 0)])
def test_patches_validate_against_the_crds(crds, phase, weight):
    api = RecordingApi()
    KubernetesBackend(CFG, api=api).apply(state(phase, weight))
    route_call = [c for c in api.calls if c[2] == "httproutes"]
    assert len(route_call) == 1
    api_version, namespace, _, name, body = route_call[0]
    assert (api_version, namespace, name) == ("gateway.networking.k8s.io/v1", "fraud", "fraud-route")
    route = merge(base_route(), body)
    assert validate_object(route, kubernetes_version(REPO), crds) == []
    rule = route["spec"]["rules"][0]
    weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
    canary = weight if phase == "canary" else 0
    assert weights == {"fraud-predictor": 100 - canary, "fraud-canary-predictor": canary}
    mirrors = [f for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
    assert (mirrors[0]["requestMirror"]["backendRef"]["name"] if mirrors else None) == (
        "fraud-shadow-predictor" if phase == "shadow" else None)


def test_version_annotation_restarts_the_right_inference_service(crds):
    expected = {"shadow": ("fraud-shadow", "4"), "canary": ("fraud-canary", "4"), "promoted": ("fraud", "4")}
    for phase, (isvc, version) in expected.items():
        api = RecordingApi()
        s = state(phase, 10)
        if phase == "promoted":
            s.stable_version = "4"
        KubernetesBackend(CFG, api=api).apply(s)
        calls = [c for c in api.calls if c[2] == "inferenceservices"]
        assert [(c[3], c[4]["spec"]["predictor"]["annotations"][VERSION_ANNOTATION]) for c in calls] == [(isvc, version)]
        obj = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
               "metadata": {"name": isvc, "namespace": "fraud"},
               "spec": {"predictor": {"model": {"modelFormat": {"name": "mlflow"}}}}}
        assert validate_object(merge(obj, calls[0][4]), kubernetes_version(REPO), crds) == []
    api = RecordingApi()
    KubernetesBackend(CFG, api=api).apply(state("rolled_back"))
    assert [c[2] for c in api.calls] == ["httproutes"]
