"""Model versions registered before trainers were objects carry a module function in their `trainer`
tag (`mlplatform.training.xgboost_trainer:train`): they still load and serve, with the same scores
as the version the current trainer object loads."""

from __future__ import annotations

import shutil

import numpy as np

from mlplatform.config import load_tenant
from mlplatform.registry.loading import load_by_alias
from mlplatform.registry.mlflow_registry import connect
from mlplatform.serving.predictor import TenantPredictor
from mlplatform.serving.smoke import newest_rows, v1_body
from mlplatform.training.trainers import ModuleTrainer
from mlplatform.workspace import Workspace

OLD_TAG = "mlplatform.training.xgboost_trainer:train"


def test_a_version_tagged_with_the_old_trainer_function_loads_and_serves(trained_fraud, tmp_path, monkeypatch):
    home = tmp_path / "home"  # a copy: the session's registry keeps its versions and aliases
    shutil.copytree(trained_fraud.home, home, ignore=shutil.ignore_patterns("ray"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg, ws = load_tenant(trained_fraud.tenant_file), Workspace(home)
    # connect(): MLflow resolves a `models:/m-...` source through its fluent API's tracking URI, which
    # an earlier test in this process may have pointed at another workspace
    client = connect(ws)
    champion = client.get_model_version_by_alias(cfg.name, "champion")
    assert champion.tags["trainer"] != OLD_TAG  # registered by this code: the trainer object's path
    old = client.create_model_version(cfg.name, source=champion.source, run_id=champion.run_id,
                                      tags=dict(champion.tags) | {"trainer": OLD_TAG})
    client.set_registered_model_alias(cfg.name, "legacy", old.version)

    mv, trainer, _ = load_by_alias(cfg, ws, "legacy")
    assert str(mv.version) == str(old.version) and isinstance(trainer, ModuleTrainer)

    rows, _ = newest_rows(cfg, ws, 20)
    answers = {}
    for alias in ("champion", "legacy"):
        pred = TenantPredictor(cfg, ws, alias=alias)
        pred.load()
        assert pred.ready
        answers[alias] = pred.predict(v1_body(rows))["predictions"]
    assert [a["model_version"] for a in answers["legacy"]] == [str(old.version)] * len(rows)
    np.testing.assert_array_equal([a["score"] for a in answers["legacy"]], [a["score"] for a in answers["champion"]])
    assert [a["decision"] for a in answers["legacy"]] == [a["decision"] for a in answers["champion"]]
