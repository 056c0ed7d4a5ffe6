"""The generic `train_deploy` pipeline: validate -> features -> train -> register (gate, aliases).

One pipeline for every tenant; the tenant file says what to do. A failing validation fails its
task, so features, training and registration never run on a bad batch.
"""

from kfp import dsl

from mlplatform_pipelines import components as c


@dsl.pipeline(name="train-deploy", description="Validate, build features, train, and register a tenant's model.")
def train_deploy(tenant: str, home: str = "", run_id: str = "", mode: str = "cluster") -> str:
    """tenant: name or path of a tenant file. home: workspace folder (default $MLPLATFORM_HOME).
    run_id: groups the step records (default: the KFP job id). mode: cluster (RayJob) or embedded."""
    ingest = c.ingest(tenant=tenant, home=home, run_id=run_id).set_display_name("ingest")
    validate = c.validate(tenant=tenant, home=home, run_id=run_id).after(ingest).set_display_name("validate")
    features = c.features(tenant=tenant, home=home, run_id=run_id).after(validate).set_display_name("features")
    train = c.train(tenant=tenant, home=home, run_id=run_id, mode=mode).after(features).set_display_name("train")
    register = c.register(tenant=tenant, home=home, run_id=run_id).after(train).set_display_name("register")
    return register.output
