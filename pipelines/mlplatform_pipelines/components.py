"""KFP v2 components: thin shims over `mlplatform.steps`, one per pipeline step.

(No `from __future__ import annotations` here: KFP reads the real annotation objects.)

Each runs in the mlplatform image in cluster mode (no packages_to_install: clusters may be
offline) and in the current interpreter under kfp.local (SubprocessRunner, use_venv=False).
The tenant is a name or a path; `run_id` defaults to the KFP job id, so step records of one run
sit together in the workspace.
"""

import os

from kfp import dsl

# Same default as TenantConfig.cluster.image; override when building your own image. The image has
# kfp and mlplatform installed, so components install nothing at run time (install_kfp_package=False).
IMAGE = os.environ.get("MLPLATFORM_IMAGE", "ghcr.io/mlplatform/mlplatform:0.1.0")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(tenant: str, home: str, run_id: str, job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import steps
    from mlplatform.tenants import resolve_tenant_path

    return json.dumps(steps.ingest(str(resolve_tenant_path(tenant)), home, run_id or job_id))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(tenant: str, home: str, run_id: str, report: dsl.Output[dsl.HTML],
             job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    """Fails the task (so nothing downstream runs) when the batch breaks an expectation."""
    import json
    import shutil

    from mlplatform import steps
    from mlplatform.tenants import resolve_tenant_path
    from mlplatform.validation.gate import ValidationFailed

    try:
        record = steps.validate(str(resolve_tenant_path(tenant)), home, run_id or job_id)
    except ValidationFailed as failed:
        shutil.copyfile(failed.result.report, report.path)  # the report travels with the failed task
        raise
    shutil.copyfile(record["report"], report.path)
    return json.dumps(record)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def features(tenant: str, home: str, run_id: str, job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import steps
    from mlplatform.tenants import resolve_tenant_path

    return json.dumps(steps.features(str(resolve_tenant_path(tenant)), home, run_id or job_id))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(tenant: str, home: str, run_id: str, mode: str, metrics: dsl.Output[dsl.Metrics],
          job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    """Embedded: Ray Train on a local Ray. Cluster: a KubeRay RayJob runs the same step."""
    import json

    from mlplatform import steps
    from mlplatform.tenants import resolve_tenant_path

    tenant_file, rid = str(resolve_tenant_path(tenant)), run_id or job_id
    if mode == "cluster":
        from mlplatform.training.cluster import run_training_rayjob

        record = run_training_rayjob(tenant_file, home, rid)
    else:
        record = steps.train(tenant_file, home, rid)
    for name, value in record["metrics"].items():
        metrics.log_metric(name, float(value))
    return json.dumps(record)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(tenant: str, home: str, run_id: str, job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import steps
    from mlplatform.tenants import resolve_tenant_path

    return json.dumps(steps.register(str(resolve_tenant_path(tenant)), home, run_id or job_id))
