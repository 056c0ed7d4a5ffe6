"""The pipelines compile with the KFP compiler, the checked-in IR is current, and it loads back."""

from __future__ import annotations

import yaml
from kfp import components

from mlplatform_pipelines.compile import COMPILED_DIR, PIPELINES, compile_all, stale


def test_checked_in_ir_is_current():
    assert stale() == [], "pipelines/compiled is stale: run `make pipelines` and commit the result"


def test_compiled_pipelines_load_back_and_install_nothing(tmp_path):
    for path in compile_all(tmp_path):
        loaded = components.load_component_from_file(str(path))
        assert loaded.name == "train-deploy"
        spec = next(yaml.safe_load_all(path.read_text()))
        tasks = spec["root"]["dag"]["tasks"]
        assert set(tasks) == {"ingest", "validate", "features", "stage", "train", "register"}
        for executor in spec["deploymentSpec"]["executors"].values():
            container = executor["container"]
            assert container["image"].startswith("ghcr.io/mlplatform/mlplatform:")
            # clusters may be offline: components must not pip-install anything when they start
            assert "pip install" not in " ".join(container.get("command", []) + container.get("args", []))


def test_steps_run_in_order_and_hand_on_only_artifacts_and_records():
    """Each task depends only on what it consumes: the artifacts and records the IR wires to it."""
    spec = next(yaml.safe_load_all((COMPILED_DIR / "train_deploy.yaml").read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["validate"]["dependentTasks"] == ["ingest"]
    assert sorted(tasks["features"]["dependentTasks"]) == ["ingest", "validate"]
    assert sorted(tasks["stage"]["dependentTasks"]) == ["features", "ingest", "validate"]
    assert tasks["train"]["dependentTasks"] == ["stage"]
    assert sorted(tasks["register"]["dependentTasks"]) == ["ingest", "train"]
    artifacts = {name: {k: (v["taskOutputArtifact"]["producerTask"], v["taskOutputArtifact"]["outputArtifactKey"])
                        for k, v in t["inputs"].get("artifacts", {}).items()} for name, t in tasks.items()}
    assert artifacts == {"ingest": {}, "validate": {"snapshot": ("ingest", "snapshot")},
                         "features": {"snapshot": ("ingest", "snapshot")},
                         "stage": {"training_set": ("features", "training_set"), "report": ("validate", "report")},
                         "train": {}, "register": {}}


def test_every_task_gets_the_deployment_settings_from_the_services_config_map():
    """platforms.kubernetes: each executor maps the chart's `mlplatform-services` ConfigMap keys
    (charts/tenant/templates/configmap.yaml) to the variables mlplatform.services names; the two
    settings whose URL carries the tenant's password come from its Secret (IDENTITY), the prediction
    log from neither (pipeline tasks log no predictions)."""
    from mlplatform import services
    from mlplatform.identity import mlflow_auth, redis_acl
    from mlplatform_pipelines.train_deploy import IDENTITY, SERVICES_CONFIG_MAP, SETTINGS

    assert set(SETTINGS) == set(services.SETTINGS) - {services.REGISTRY, services.PREDICTION_LOG}
    assert set(IDENTITY) == {mlflow_auth.USERNAME, mlflow_auth.PASSWORD, redis_acl.USERNAME, redis_acl.PASSWORD,
                             services.REGISTRY}
    spec = list(yaml.safe_load_all((COMPILED_DIR / "train_deploy.yaml").read_text()))
    platform = spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors = spec[0]["deploymentSpec"]["executors"]
    assert set(platform) == set(executors)
    for name, config in platform.items():
        (cm,) = config["configMapAsEnv"]
        assert cm["configMapName"] == SERVICES_CONFIG_MAP, name
        assert {k["envVar"]: k["configMapKey"] for k in cm["keyToEnv"]} == {k: k for k in SETTINGS}
        (secret,) = config["secretAsEnv"]
        assert {k["envVar"]: k["secretKey"] for k in secret["keyToEnv"]} == {k: k for k in IDENTITY}


def test_every_pipeline_is_registered():
    assert set(PIPELINES) == {p.stem for p in COMPILED_DIR.glob("*.yaml")}


def test_the_namespace_kfp_runs_pipelines_in_holds_the_services_config_map():
    """KFP standalone runs every task pod in its own namespace (kubeflow), not the tenant's: the
    platform chart renders `mlplatform-services` there, every key the IR maps, pointing at the
    platform's MLflow and Redis Services (the tenant defaults name the same ones)."""
    from mlplatform import services
    from mlplatform.config import ClusterConfig
    from mlplatform.verify import render
    from mlplatform_pipelines.train_deploy import SERVICES_CONFIG_MAP, SETTINGS

    objects, _, _ = render.render(COMPILED_DIR.parents[1] / "charts" / "mlplatform", None, "mlplatform")
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == SERVICES_CONFIG_MAP]
    assert cm["metadata"]["namespace"] == "kubeflow"
    assert set(cm["data"]) == set(SETTINGS)
    defaults = ClusterConfig()
    assert cm["data"][services.TRACKING] == defaults.mlflow_tracking_uri
    assert cm["data"][services.REDIS] == defaults.redis_address
