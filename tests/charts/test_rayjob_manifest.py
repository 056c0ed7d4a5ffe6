"""The KubeRay RayJob built for a tenant's training step: valid for the RayJob CRD (v1.7.0),
bounded in time, restricted, and using the tenant's cluster settings."""

from __future__ import annotations

import copy

import pytest

from mlplatform.config import load_tenant
from mlplatform.training.rayjob import build_rayjob, job_name
from mlplatform.verify import policy, schemas

from cluster_helpers import tenant_files

TENANTS = tenant_files()


@pytest.mark.parametrize("path", TENANTS, ids=lambda p: p.parent.name)
def test_rayjob_is_valid_for_the_crd(path, crds, k8s_version):
    job = build_rayjob(load_tenant(path), run_id="run-42")
    assert crds.get("ray.io/v1", "RayJob") is not None
    assert schemas.validate_object(job, k8s_version, crds) == []


def test_rayjob_invalid_field_is_caught(crds, k8s_version):
    job = build_rayjob(load_tenant(TENANTS[0]), run_id="run-42")
    bad = copy.deepcopy(job)
    bad["spec"]["ttlSecondsAfterFinished"] = "10m"
    assert schemas.validate_object(bad, k8s_version, crds)
    bad = copy.deepcopy(job)
    bad["spec"]["shutdownAfterJobFinish"] = True  # typo of shutdownAfterJobFinishes
    assert schemas.validate_object(bad, k8s_version, crds)


def test_rayjob_lifecycle_and_settings():
    cfg = load_tenant(TENANTS[0])
    job = build_rayjob(cfg, run_id="run-42")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == cfg.cluster.training.ttl_seconds_after_finished
    assert spec["activeDeadlineSeconds"] == cfg.cluster.training.active_deadline_seconds
    assert job["metadata"]["namespace"] == cfg.name
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["replicas"] == cfg.model.ray.num_workers
    images = {c["image"] for _, pod in policy.pod_specs(spec) for c in pod["containers"]}
    assert images == {cfg.cluster.image}


@pytest.mark.parametrize("workers, cpus", [(1, 2), (3, 4)])
def test_rayjob_worker_group_follows_the_tenant_file(workers, cpus):
    """model.ray: one worker pod per Ray Train worker (a fixed group, no autoscaling), each starting Ray
    with the CPUs the trainer reserves per worker inside a RayJob (distributed.worker_cpus)."""
    cfg = load_tenant(TENANTS[0])
    model = cfg.model.model_copy(update={"ray": cfg.model.ray.model_copy(update={"num_workers": workers,
                                                                                "num_cpus": cpus})})
    group = build_rayjob(cfg.model_copy(update={"model": model}), run_id="r")["spec"]["rayClusterSpec"]
    assert group["enableInTreeAutoscaling"] is False
    [spec] = group["workerGroupSpecs"]
    assert (spec["replicas"], spec["minReplicas"], spec["maxReplicas"]) == (workers, workers, workers)
    assert spec["rayStartParams"]["num-cpus"] == str(cpus)
    assert group["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head trains nothing


def test_rayjob_pods_meet_the_policy_and_network_labels():
    job = build_rayjob(load_tenant(TENANTS[0]), run_id="run-42")
    assert policy.check_object(job) == []
    pods = [t for t in (job["spec"]["submitterPodTemplate"], job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"],
                        *[w["template"] for w in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]])]
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["labels"]["mlplatform.io/component"] == "training"


def test_cluster_image_override_reaches_every_pod():
    cfg = load_tenant(TENANTS[0])
    cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"image": "registry.local/ml:2.0.1"})})
    job = build_rayjob(cfg, run_id="x")
    assert {c["image"] for _, p in policy.pod_specs(job["spec"]) for c in p["containers"]} == {"registry.local/ml:2.0.1"}


def test_job_name_is_a_short_dns_label():
    name = job_name("fraud", "Run_2024-01-01T00:00:00.000000+00:00 with a very long suffix")
    assert len(name) <= 47 and name == name.lower() and not name.endswith("-")
