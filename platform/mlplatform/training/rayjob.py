"""KubeRay RayJob for a tenant's training step in cluster mode (a pure function: config in, manifest out).

The pipeline's training component creates this object in the tenant namespace (its RBAC allows
`create rayjobs` there and nothing broader). KubeRay starts a RayCluster, submits the entrypoint
from a submitter Job, deletes the cluster when the job ends (shutdownAfterJobFinishes) after a
TTL, and fails the job when it runs past activeDeadlineSeconds. Every pod runs as the restricted
Pod Security Standard requires, with requests and limits, the tenant's pinned image and the
labels the tenant's NetworkPolicies select (mlplatform.io/component=training).
"""

from __future__ import annotations

import re
from typing import Any

from mlplatform import services
from mlplatform.config import Resources, TenantConfig
from mlplatform.identity.secret_files import IDENTITY_DIR

RAY_VERSION = "2.60.0"  # the ray release in the image (pyproject: ray[train,tune]~=2.60.0)
_NAME_MAX = 47  # KubeRay derives child names (<job>-raycluster-xxxxx-head-...) that must stay <= 63


def _resources(r: Resources) -> dict[str, Any]:
    return {"requests": {"cpu": r.requests.cpu, "memory": r.requests.memory},
            "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory}}


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_template(cfg: TenantConfig, container: dict[str, Any], labels: dict[str, str],
                  restart_never: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": f"{cfg.name}-training",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},  # Ray's session dir (/tmp/ray)
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},  # object store
        ],
    }
    if any(m["name"] == "identity" for m in container["volumeMounts"]):
        spec["volumes"].append({"name": "identity", "secret": {"secretName": identity_secret(cfg.name)}})
    if restart_never:
        spec["restartPolicy"] = "Never"
    return {"metadata": {"labels": labels}, "spec": spec}


IDENTITY_MOUNT = "/etc/mlplatform-identity"


def identity_secret(tenant: str) -> str:
    """The tenant's trainer identity for MLflow (charts/tenant/templates/identity.yaml)."""
    return f"{tenant}-trainer"


def _container(cfg: TenantConfig, name: str, resources: Resources, env: list[dict[str, str]],
               ports: list[dict[str, Any]] | None = None, identity: bool = True) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "image": cfg.cluster.image,
        "imagePullPolicy": cfg.cluster.image_pull_policy,
        "env": env + ([{"name": IDENTITY_DIR, "value": IDENTITY_MOUNT}] if identity else []),
        "resources": _resources(resources),
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
            # MLflow as the tenant's trainer (identity/secret_files.py); the job submitter only
            # talks to the Ray head and gets none
            *([{"name": "identity", "mountPath": IDENTITY_MOUNT, "readOnly": True}] if identity else []),
        ],
    }
    if ports:
        c["ports"] = ports
    return c


def train_entrypoint(mlflow_run_id: str) -> str:
    """What the RayJob runs: training from the staged MLflow run (steps.train), nothing else."""
    return f"mlplatform train-run {mlflow_run_id}"


def job_name(tenant: str, run_id: str) -> str:
    """A DNS-1123 name for the RayJob of one run, short enough for KubeRay's derived names."""
    run = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    return f"{tenant}-train-{run}"[:_NAME_MAX].rstrip("-")


def build_rayjob(cfg: TenantConfig, run_id: str, entrypoint: str | None = None,
                 ray_version: str = RAY_VERSION) -> dict[str, Any]:
    """The RayJob manifest (ray.io/v1) that trains `cfg`'s model from the staged MLflow run `run_id`."""
    c = cfg.cluster
    t = c.training
    labels = {
        "app.kubernetes.io/part-of": "mlplatform",
        "app.kubernetes.io/component": "training",
        "mlplatform.io/tenant": cfg.name,
        "mlplatform.io/component": "training",  # selected by the tenant's allow-ray NetworkPolicy
        "mlplatform.io/run-id": re.sub(r"[^A-Za-z0-9._-]+", "-", run_id)[:63].strip("-._") or "run",
    }
    # training reads everything from the staged MLflow run (the tenant file the pipeline run was
    # given, the training set): MLflow, as the tenant's trainer, is the one service it needs; its
    # scratch lives on /tmp
    env = [
        {"name": services.TRACKING, "value": c.mlflow_tracking_uri},
        {"name": "MLPLATFORM_HOME", "value": "/tmp/mlplatform"},
        {"name": "HOME", "value": "/tmp"},
    ]
    head = _container(cfg, "ray-head", t.head, env, ports=[
        {"name": "gcs-server", "containerPort": 6379, "protocol": "TCP"},
        {"name": "dashboard", "containerPort": 8265, "protocol": "TCP"},
        {"name": "client", "containerPort": 10001, "protocol": "TCP"},
    ])
    worker = _container(cfg, "ray-worker", t.worker, env)
    submitter = _container(
        cfg, "ray-job-submitter",
        Resources.model_validate({"requests": {"cpu": "100m", "memory": "256Mi"},
                                  "limits": {"cpu": "500m", "memory": "512Mi"}}),
        env, identity=False,
    )
    workers = cfg.model.ray.num_workers
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": job_name(cfg.name, run_id), "namespace": cfg.name, "labels": labels},
        "spec": {
            "entrypoint": entrypoint or train_entrypoint(run_id),
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": t.ttl_seconds_after_finished,
            "activeDeadlineSeconds": t.active_deadline_seconds,
            "backoffLimit": 0,  # a failed training run is reported to the pipeline, not retried blindly
            "submitterPodTemplate": _pod_template(cfg, submitter, labels, restart_never=True),
            "rayClusterSpec": {
                "rayVersion": ray_version,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": {
                    # the head schedules no tasks: training runs on the workers only
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                    "template": _pod_template(cfg, head, labels),
                },
                "workerGroupSpecs": [{
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": workers,
                    "maxReplicas": workers,
                    "rayStartParams": {"num-cpus": str(cfg.model.ray.num_cpus)},
                    "template": _pod_template(cfg, worker, labels),
                }],
            },
        },
    }
