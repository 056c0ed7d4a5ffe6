"""A validation window too thin to choose on (training/time_folds.py): the classification recipe
chooses its rounds (and a tuning trial) over several time folds of all rows, trains the final model on
the training rows alone for that many rounds, and says so; a window with enough positives keeps
early stopping on itself. Data: 10 positives in 5,000 rows, one of them in the validation window
(tests/integration/test_few_positives.py, which runs the whole pipeline on the same table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost

from mlplatform.config import TenantConfig, load_tenant
from mlplatform.scaffold import scaffold_tenant
from mlplatform.training import time_folds, xgboost_trainer
from mlplatform.training.dataset import time_split
from tests.integration.test_few_positives import rare_positive_table


@pytest.fixture(scope="module")
def thin(tmp_path_factory) -> tuple[TenantConfig, pd.DataFrame, pd.DataFrame]:
    """The table as `tenant new --from-table` scaffolds it, split by time as the step splits it."""
    tmp = tmp_path_factory.mktemp("thin")
    table = rare_positive_table()
    table.to_csv(tmp / "payments.csv", index=False)
    cfg = load_tenant(scaffold_tenant("payments", tmp / "payments.csv", "is_fraud", timestamp="created_at",
                                      out_dir=tmp / "t"))
    table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
    train, valid = time_split(cfg, table)
    assert (train["is_fraud"].sum(), valid["is_fraud"].sum()) == (9, 1)
    return cfg, train, valid


def with_model(cfg: TenantConfig, **changes) -> TenantConfig:
    raw = cfg.model_dump(mode="json")
    for path, value in changes.items():
        node = raw["model"]
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return TenantConfig.model_validate(raw)


def test_windows_hold_equal_shares_of_the_positives_in_time_order(thin):
    cfg, train, valid = thin
    shuffled = train.sample(frac=1, random_state=0)  # the folds follow the timestamps, not the row order
    folds = time_folds.time_folds(cfg, shuffled, valid)
    assert folds.frame["created_at"].is_monotonic_increasing and len(folds.frame) == len(train) + len(valid)
    assert len(folds.windows) == cfg.model.split.time_folds == 3
    starts = [s for s, _ in folds.windows]
    assert starts == sorted(starts) and [e for _, e in folds.windows] == starts[1:] + [len(folds.frame)]
    per_window = [int(folds.parts(i)[1]["is_fraud"].sum()) for i in range(3)]
    before_first = int(folds.parts(0)[0]["is_fraud"].sum())
    assert sum(per_window) + before_first == 10 and min(per_window + [before_first]) >= 2
    assert max(per_window) - min(per_window) <= 1
    # a window starts at a positive, so every fold trains on the positives before it
    assert all(folds.frame["is_fraud"].iloc[s] == 1 for s in starts)


def test_too_few_positives_for_any_fold(thin):
    cfg, train, valid = thin
    one = pd.concat([train[train["is_fraud"] == 1].head(1), train[train["is_fraud"] == 0].head(50)])
    assert time_folds.time_folds(cfg, one, valid[valid["is_fraud"] == 0]) is None  # nothing to score on
    assert "too few for time folds" in time_folds.record(cfg, valid)["message"]


def test_best_rounds_peak_of_the_mean_over_folds():
    curves = [np.array([0.1, 0.5, 0.4, 0.3]), np.array([0.3, 0.2, 0.6, 0.6]), np.array([0.2, 0.4])]
    rounds, mean = time_folds.best_rounds(curves)
    np.testing.assert_allclose(mean, [0.2, 11 / 30, 0.5, 0.45])
    assert rounds == 3


def test_a_thin_window_chooses_rounds_over_time_folds_and_trains_on_the_training_rows(thin, tmp_path):
    cfg, train, valid = thin
    trained = xgboost_trainer.train(cfg, train, valid, tmp_path)
    sel = trained.selection
    assert sel["rule"] == "time folds" and sel["thin"] and sel["validation_positives"] == 1
    assert [f["window_positives"] for f in sel["folds"]] == [2, 3, 2] and len(sel["fold_scores"]) == 3
    assert "the validation window holds 1 positive(s), fewer than model.split.min_validation_positives 30" in \
        sel["message"]
    rounds = sel["rounds"]
    assert cfg.model.min_boost_rounds <= rounds <= cfg.model.num_boost_round
    assert trained.model.num_boosted_rounds() == rounds == trained.best_iteration + 1  # never an empty model
    # the final model: the training rows alone (the window stays unseen), exactly `rounds` rounds
    feats = cfg.model.features
    alone = xgboost.train(trained.params, xgboost.DMatrix(train[feats], label=train["is_fraud"]),
                          num_boost_round=rounds)
    np.testing.assert_allclose(xgboost_trainer.predict(trained.model, valid),
                               alone.predict(xgboost.DMatrix(valid[feats])), rtol=1e-6)


def test_a_window_with_enough_positives_keeps_early_stopping(thin, tmp_path):
    cfg, train, valid = thin
    trained = xgboost_trainer.train(with_model(cfg, split__min_validation_positives=1), train, valid, tmp_path)
    assert trained.selection == {"rule": "validation window", "thin": False, "validation_positives": 1,
                                 "min_validation_positives": 1}


def test_tuning_on_a_thin_window_scores_its_trials_over_the_time_folds(thin, tmp_path):
    cfg, train, valid = thin
    tuned = with_model(cfg, tune={"enabled": True, "num_samples": 2, "space": {"max_depth": [2, 6]}},
                       num_boost_round=60)
    trained = xgboost_trainer.train(tuned, train, valid, tmp_path)
    assert len(trained.tune_trials) == 2
    assert all(len(t["folds"]) == 3 and t["rounds"] >= cfg.model.min_boost_rounds for t in trained.tune_trials)
    [chosen] = [t for t in trained.tune_trials if t["selected"]]
    assert trained.selection["rounds"] == chosen["rounds"] == trained.model.num_boosted_rounds()
    assert trained.selection["fold_scores"] == [round(s, 4) for s in chosen["folds"]]
    assert trained.params["max_depth"] == chosen["config"]["max_depth"]
