"""The trainer contract (mlplatform.contracts.Trainer): the platform's trainers are objects named by
dotted path; the module functions older versions name are adapted; anything else is refused."""

from __future__ import annotations

import pytest

from mlplatform.contracts import MatrixScorer, Trainer
from mlplatform.training import lightgbm_ranker, xgboost_trainer
from mlplatform.training.trainers import ModuleTrainer, matrix_scorer_of, resolve_trainer


def test_the_platform_trainers_are_trainer_objects():
    assert resolve_trainer("mlplatform.training.xgboost_trainer:trainer") is xgboost_trainer.trainer
    assert resolve_trainer("mlplatform.training.lightgbm_ranker:trainer") is lightgbm_ranker.trainer
    assert isinstance(xgboost_trainer.trainer, Trainer) and isinstance(lightgbm_ranker.trainer, Trainer)
    # the optional matrix scorer: xgboost has one, the ranker has not
    assert matrix_scorer_of(xgboost_trainer.trainer) is xgboost_trainer.trainer
    assert matrix_scorer_of(lightgbm_ranker.trainer) is None


@pytest.mark.parametrize("module", [xgboost_trainer, lightgbm_ranker])
def test_a_module_function_path_is_adapted(module):
    trainer = resolve_trainer(f"{module.__name__}:train")
    assert isinstance(trainer, ModuleTrainer) and isinstance(trainer, Trainer)
    assert trainer.train is module.train and trainer.predict is module.predict
    assert trainer.load is module.load_model and trainer.log is module.log_model
    assert isinstance(trainer, MatrixScorer) == hasattr(module, "predict_matrix")


def test_what_is_no_trainer_is_refused_with_the_path_and_the_missing_members():
    with pytest.raises(ImportError, match=r"'mlplatform.plugins:resolve'.*lacks \['predict', 'load_model'\]"):
        resolve_trainer("mlplatform.plugins:resolve")  # a function whose module is no trainer module
    with pytest.raises(ImportError, match=r"'mlplatform.training.xgboost_trainer:MODEL_FILE' is not a trainer"):
        resolve_trainer("mlplatform.training.xgboost_trainer:MODEL_FILE")
    with pytest.raises(ImportError, match="has no attribute 'nope'"):
        resolve_trainer("mlplatform.training.xgboost_trainer:nope")


@pytest.mark.parametrize(("imbalance", "positives", "weighted"), [
    ("auto", 10, True), ("auto", xgboost_trainer.AUTO_WEIGHT_BELOW, False), ("scale_pos_weight", 500, True),
    ("none", 10, False)])
def test_positives_are_weighed_by_the_class_ratio_as_the_tenant_file_says(imbalance, positives, weighted):
    import pandas as pd
    import yaml

    from mlplatform.config import TenantConfig
    from tests.conftest import FRAUD_TENANT

    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["model"]["imbalance"] = imbalance
    cfg = TenantConfig.model_validate(raw)
    rows = pd.DataFrame({cfg.data.label: [1] * positives + [0] * 5000})
    params = xgboost_trainer.base_params(cfg, rows)
    assert params.get("scale_pos_weight") == (5000 / positives if weighted else None)
