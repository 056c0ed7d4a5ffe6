"""Cluster mode: the training step runs as a KubeRay RayJob created by the pipeline's train task.

The task creates the RayJob (manifest from `rayjob.build_rayjob`) in the tenant namespace, waits
until KubeRay reports it finished, and reads the step record the job wrote to the shared
workspace. The RayJob's entrypoint is `mlplatform train <tenant> --run-id <id>`, i.e. the same
`steps.train` the embedded mode runs, inside the Ray cluster.

Not exercised here (no Kubernetes on our machines); the manifest is validated against the
RayJob CRD in tests/charts. See docs/cluster.md, "Training as a RayJob".
"""

from __future__ import annotations

import time
from typing import Any

from mlplatform.config import load_tenant
from mlplatform.training.rayjob import build_rayjob
from mlplatform.workspace import Workspace

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


# the step ends up to one poll after the job does (on average half the interval: 5 s at 10 s); a GET of
# one RayJob every 2 s is nothing to the API server
def run_training_rayjob(tenant_file: str, home: str, run_id: str, poll_seconds: float = 2) -> dict[str, Any]:
    from kubernetes import client, config

    cfg = load_tenant(tenant_file)
    ws = Workspace.from_env(home or None)
    config.load_incluster_config()
    api = client.CustomObjectsApi()
    manifest = build_rayjob(cfg, run_id, entrypoint=f"mlplatform train {cfg.name} --run-id {run_id} --home {ws.home}")
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
            return ws.read_step(cfg.name, run_id, "train")
        time.sleep(poll_seconds)
    raise TimeoutError(f"RayJob {namespace}/{name} did not finish before its deadline")
