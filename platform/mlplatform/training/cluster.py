"""Cluster mode: the training step runs as a KubeRay RayJob created by the pipeline's train task.

The stage task has logged what training reads with an MLflow run (the training set, the tenant file;
training/training_set.py says why MLflow and not KFP's object store). The train task creates the
RayJob (manifest from `rayjob.build_rayjob`) in the tenant namespace with the entrypoint
`mlplatform train-run <mlflow run id>`, i.e. the same `steps.train` the embedded mode runs, inside
the Ray cluster; waits until KubeRay reports it finished; and reads the step record the job logged
with that run. Nothing passes through a filesystem.

Not exercised here (no Kubernetes on our machines); the manifest is validated against the
RayJob CRD in tests/charts. See docs/cluster.md, "Training as a RayJob".
"""

from __future__ import annotations

import time
from typing import Any

from mlplatform.config import load_tenant
from mlplatform.training.mlflow_log import recorded
from mlplatform.training.rayjob import build_rayjob, train_entrypoint
from mlplatform.workspace import Workspace

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


# the step ends up to one poll after the job does (on average half the interval: 5 s at 10 s); a GET of
# one RayJob every 2 s is nothing to the API server
def run_training_rayjob(tenant_file: str, mlflow_run_id: str, poll_seconds: float = 2) -> dict[str, Any]:
    from kubernetes import client, config

    cfg = load_tenant(tenant_file)
    config.load_incluster_config()
    api = client.CustomObjectsApi()
    manifest = build_rayjob(cfg, mlflow_run_id, entrypoint=train_entrypoint(mlflow_run_id))
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", manifest)
    except client.ApiException as err:
        if err.status != 409:  # 409: a retry of this run finds its job already there
            raise
    deadline = time.monotonic() + cfg.cluster.training.active_deadline_seconds + 300
    while time.monotonic() < deadline:
        status = api.get_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", name).get("status", {})
        job_status = status.get("jobStatus", "")
        if job_status in TERMINAL:
            if job_status != "SUCCEEDED":
                raise RuntimeError(f"RayJob {namespace}/{name} ended {job_status}: {status.get('message', '')}")
            # MLFLOW_TRACKING_URI: the task's environment, as the RayJob's (services.SETTINGS)
            return recorded(Workspace.from_env(), mlflow_run_id)
        time.sleep(poll_seconds)
    raise TimeoutError(f"RayJob {namespace}/{name} did not finish before its deadline")
