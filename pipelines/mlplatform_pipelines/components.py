"""KFP v2 components: thin shims over `mlplatform.pipeline_tasks`, one per pipeline task.

(No `from __future__ import annotations` here: KFP reads the real annotation objects.)

Each runs in the mlplatform image in cluster mode (no packages_to_install: clusters may be
offline) and in the current interpreter under kfp.local (SubprocessRunner, use_venv=False).
Tasks hand data on only as typed artifacts and JSON records (see pipeline_tasks.py for which);
`tenant` is a name, a path or the tenant file's YAML text; `run_id` defaults to the KFP job id.
"""

import os

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

# Same default as TenantConfig.cluster.image; override when building your own image. The image has
# kfp and mlplatform installed, so components install nothing at run time (install_kfp_package=False).
IMAGE = os.environ.get("MLPLATFORM_IMAGE", "ghcr.io/mlplatform/mlplatform:0.1.0")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(tenant: str, home: str, run_id: str, snapshot: Output[Dataset],
           job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import pipeline_tasks

    return json.dumps(pipeline_tasks.ingest(tenant, home, run_id or job_id, snapshot.path))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(tenant: str, home: str, run_id: str, snapshot: Input[Dataset], report: Output[HTML],
             job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    """Fails the task (so nothing downstream runs) when the batch breaks an expectation."""
    import json

    from mlplatform import pipeline_tasks

    return json.dumps(pipeline_tasks.validate(tenant, home, run_id or job_id, snapshot.path, report.path))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def features(tenant: str, home: str, run_id: str, validation: str, snapshot: Input[Dataset],
             training_set: Output[Dataset], job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import pipeline_tasks

    return json.dumps(pipeline_tasks.features(tenant, home, run_id or job_id, json.loads(validation),
                                              snapshot.path, training_set.path))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def stage(tenant: str, home: str, run_id: str, snapshot_record: str, validation: str,
          training_set: Input[Dataset], report: Input[HTML], job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    """Opens the model's MLflow run with what training reads (the hand-off to a RayJob)."""
    import json

    from mlplatform import pipeline_tasks

    return json.dumps(pipeline_tasks.stage(tenant, home, run_id or job_id, json.loads(snapshot_record),
                                           json.loads(validation), training_set.path, report.path))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(tenant: str, home: str, mode: str, staged: str, metrics: Output[Metrics]) -> str:
    """Embedded: Ray Train on a local Ray, in this task. Cluster: a KubeRay RayJob, from the staged run."""
    import json

    from mlplatform import pipeline_tasks

    record = pipeline_tasks.train(tenant, home, mode, json.loads(staged))
    for name, value in record["metrics"].items():
        metrics.log_metric(name, float(value))
    return json.dumps(record)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(tenant: str, home: str, run_id: str, snapshot_record: str, trained: str,
             job_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
    import json

    from mlplatform import pipeline_tasks

    return json.dumps(pipeline_tasks.register(tenant, home, run_id or job_id, json.loads(snapshot_record),
                                              json.loads(trained)))
