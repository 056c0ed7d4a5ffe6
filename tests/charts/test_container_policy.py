"""Container security policy on every rendered workload (and proof that it rejects bad ones)."""

from __future__ import annotations

import copy

import pytest

from mlplatform.verify import policy, render


def test_every_container_meets_the_policy(cases):
    problems = [f"{c.name} {render.object_id(o)} {p}" for c in cases for o in c.objects for p in policy.check_object(o)]
    assert not problems, "\n".join(problems)


def test_policy_sees_every_workload(cases):
    """The walker finds pod specs inside CRDs too (KServe predictors), not only core workloads."""
    kinds = {o["kind"] for c in cases for o in c.objects if list(policy.pod_specs(o.get("spec", {})))}
    assert {"Deployment", "StatefulSet", "CronJob", "InferenceService"} <= kinds


@pytest.mark.parametrize("image,pinned", [
    ("ghcr.io/mlplatform/mlplatform:0.1.0", True),
    ("redis@sha256:" + "a" * 64, True),
    ("localhost:5000/mlplatform:1.2", True),
    ("redis", False),
    ("redis:latest", False),
    ("localhost:5000/redis", False),
])
def test_image_pinning(image, pinned):
    assert policy.image_pinned(image) is pinned


def _predictor(cases):
    tenant = next(c for c in cases if c.name == "tenant/defaults")
    return copy.deepcopy(next(o for o in tenant.objects if o["kind"] == "InferenceService"))


@pytest.mark.parametrize("mutate,expected", [
    (lambda c, p: c["resources"].pop("limits"), "no limits.cpu"),
    (lambda c, p: c["resources"]["requests"].pop("memory"), "no requests.memory"),
    (lambda c, p: (c["securityContext"].pop("runAsNonRoot"), p["securityContext"].pop("runAsNonRoot")), "runAsNonRoot"),
    (lambda c, p: (c["securityContext"].pop("seccompProfile"), p["securityContext"].pop("seccompProfile")), "seccomp"),
    (lambda c, p: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "drop does not contain ALL"),
    (lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    (lambda c, p: c.update(image="ghcr.io/mlplatform/mlplatform:latest"), "not pinned"),
])
def test_policy_rejects(cases, mutate, expected):
    isvc = _predictor(cases)
    pod = isvc["spec"]["predictor"]
    mutate(pod["containers"][0], pod)
    problems = policy.check_object(isvc)
    assert any(expected in p for p in problems), problems
