"""The generic `train_deploy` pipeline: ingest -> validate -> features -> stage -> train -> register.

One pipeline for every tenant; the tenant file says what to do. Tasks hand data on as artifacts and
JSON records only (mlplatform/pipeline_tasks.py); a failing validation fails its task, so nothing
downstream runs on a bad batch.

On a cluster every task reads the deployment's settings (MLflow, Redis: the names in
mlplatform/services.py) from the ConfigMap `mlplatform-services` in the namespace the run executes
in, and the tenant's identity (its credentials, its Feast registry) from the Secret its
`identity_secret` parameter names (kfp-kubernetes `use_config_map_as_env` / `use_secret_as_env`, the
IR's `platforms.kubernetes` section). kfp.local ignores that section: embedded tasks inherit this
process's environment (the services profile sets the same names).
"""

from kfp import dsl, kubernetes

from mlplatform_pipelines import components as c

SERVICES_CONFIG_MAP = "mlplatform-services"
# The deployment's settings that are no secret (mlplatform.services.SETTINGS less the two URLs that
# carry a password), written out: the pipeline module is compiled without mlplatform's own
# dependencies in mind; tests/pipelines checks the lists agree
SETTINGS = ("MLFLOW_TRACKING_URI", "MLPLATFORM_FEAST_ONLINE_STORE", "MLPLATFORM_REDIS_ADDRESS",
            "MLPLATFORM_STREAM_REDIS_URL")
# The tenant's pipeline identity (charts/tenant identity.yaml, Secret <tenant>-pipeline in the
# namespace the run executes in): MLflow as its trainer, Redis as its writer, its own Feast registry.
# The Secret's name is a run parameter (kfp-kubernetes resolves a parameter as secret_name at run time).
IDENTITY = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLPLATFORM_REDIS_USERNAME",
            "MLPLATFORM_REDIS_PASSWORD", "MLPLATFORM_FEAST_REGISTRY")


def _in_cluster(task: dsl.PipelineTask, name: str, identity_secret) -> dsl.PipelineTask:
    kubernetes.use_config_map_as_env(task, SERVICES_CONFIG_MAP, {k: k for k in SETTINGS})
    kubernetes.use_secret_as_env(task, secret_name=identity_secret, secret_key_to_env={k: k for k in IDENTITY})
    return task.set_display_name(name)


@dsl.pipeline(name="train-deploy", description="Validate, build features, train, and register a tenant's model.")
def train_deploy(tenant: str, home: str = "", run_id: str = "", mode: str = "cluster",
                 identity_secret: str = "") -> str:
    """tenant: name, path or YAML text of a tenant file. home: a workspace folder shared by the tasks
    (kfp.local only; default: each task its own scratch). run_id: groups the step records (default:
    the KFP job id). mode: cluster (training as a RayJob) or embedded (in the train task).
    identity_secret: on a cluster, the tenant's Secret <tenant>-pipeline (kfp.local ignores it)."""
    s = identity_secret
    ingest = _in_cluster(c.ingest(tenant=tenant, home=home, run_id=run_id), "ingest", s)
    validate = _in_cluster(c.validate(tenant=tenant, home=home, run_id=run_id,
                                      snapshot=ingest.outputs["snapshot"]), "validate", s)
    features = _in_cluster(c.features(tenant=tenant, home=home, run_id=run_id, validation=validate.outputs["Output"],
                                      snapshot=ingest.outputs["snapshot"]), "features", s)
    stage = _in_cluster(c.stage(tenant=tenant, home=home, run_id=run_id, snapshot_record=ingest.outputs["Output"],
                                validation=validate.outputs["Output"], training_set=features.outputs["training_set"],
                                report=validate.outputs["report"]), "stage", s)
    train = _in_cluster(c.train(tenant=tenant, home=home, mode=mode, staged=stage.output), "train", s)
    register = _in_cluster(c.register(tenant=tenant, home=home, run_id=run_id,
                                      snapshot_record=ingest.outputs["Output"], trained=train.outputs["Output"]),
                           "register", s)
    return register.output
