"""Every rendered object validates against the official Kubernetes schemas (pinned version) or its
CRD's openAPIV3Schema; an unknown kind fails; invalid objects are caught."""

from __future__ import annotations

import copy

import pytest

from mlplatform.verify import render, schemas

from cluster_helpers import REPO_ROOT, require


def _validate(obj, k8s_version, crds):
    try:
        return schemas.validate_object(obj, k8s_version, crds)
    except schemas.SchemaMissing as exc:
        return [str(exc)]


def test_kubernetes_validate_has_the_pinned_version(kubernetes_validate, k8s_version):
    import kubernetes_validate.utils  # noqa: F401  (all_versions lives there)

    minor = ".".join(k8s_version.split(".")[:2])
    require(minor in {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()},
            f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes {minor}")


def test_every_rendered_object_is_valid(cases, crds, k8s_version, kubernetes_validate):
    problems = [f"{c.name} {render.object_id(o)}: {e}" for c in cases for o in c.objects
                for e in _validate(o, k8s_version, crds)]
    assert not problems, "\n".join(problems)


def test_custom_resources_are_checked_against_their_crd(cases, crds):
    kinds = {(o["apiVersion"], o["kind"]) for c in cases for o in c.objects}
    for expected in [("serving.kserve.io/v1beta1", "InferenceService"), ("monitoring.coreos.com/v1", "PrometheusRule"),
                     ("monitoring.coreos.com/v1", "ServiceMonitor"), ("gateway.networking.k8s.io/v1", "HTTPRoute")]:
        assert expected in kinds
        assert crds.get(*expected) is not None, f"no CRD for {expected}"


@pytest.fixture(scope="module")
def tenant_objects(cases):
    return {o["kind"]: o for o in next(c for c in cases if c.name == "tenant/defaults").objects}


def test_wrong_type_in_a_custom_resource_is_caught(tenant_objects, crds, k8s_version):
    isvc = copy.deepcopy(tenant_objects["InferenceService"])
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    assert any("minReplicas" in e for e in _validate(isvc, k8s_version, crds))


def test_unknown_field_in_a_strict_crd_is_caught(tenant_objects, crds, k8s_version):
    route = copy.deepcopy(tenant_objects["HTTPRoute"])
    route["spec"]["rules"][0]["backendRefs"][0]["wieght"] = 10
    errors = _validate(route, k8s_version, crds)
    assert any("wieght" in e for e in errors), errors


def test_bad_metadata_on_a_custom_resource_is_caught(tenant_objects, crds, k8s_version):
    rule = copy.deepcopy(tenant_objects["PrometheusRule"])
    rule["metadata"]["labels"]["severity"] = 3
    assert any("metadata.labels.severity" in e for e in _validate(rule, k8s_version, crds))


def test_wrong_type_in_a_core_object_is_caught(tenant_objects, crds, k8s_version, kubernetes_validate):
    cron = copy.deepcopy(tenant_objects["CronJob"])
    cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "two"
    assert any("backoffLimit" in e for e in _validate(cron, k8s_version, crds))


def test_unknown_field_in_a_core_object_is_caught(tenant_objects, crds, k8s_version, kubernetes_validate):
    quota = copy.deepcopy(tenant_objects["ResourceQuota"])
    quota["spec"]["hardd"] = {}
    assert any("hardd" in e for e in _validate(quota, k8s_version, crds))


def test_unknown_kind_fails(crds, k8s_version, kubernetes_validate):
    with pytest.raises(schemas.SchemaMissing):
        schemas.validate_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
                                k8s_version, crds)


def test_crds_dir_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPLATFORM_CRDS_DIR", str(tmp_path))
    assert schemas.crds_dir(REPO_ROOT) == tmp_path
    monkeypatch.delenv("MLPLATFORM_CRDS_DIR")
    assert schemas.crds_dir(REPO_ROOT) == (REPO_ROOT / ".." / "shared" / "crds").resolve()
