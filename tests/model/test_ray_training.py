"""Ray Train data hand-off: each worker's shard through the object store (not Ray Data), the CPUs a
worker reserves, and a real two-worker fit (xgboost's collective over the shards)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost
import yaml
from sklearn.metrics import roc_auc_score

from mlplatform.config import TenantConfig
from mlplatform.training import lightgbm_ranker, xgboost_trainer
from tests.conftest import FRAUD_TENANT


def fraud_cfg(**ray) -> TenantConfig:
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["model"]["ray"] = {"num_cpus": 2, "num_workers": 1} | ray
    raw["model"]["num_boost_round"], raw["model"]["early_stopping_rounds"] = 20, 21
    return TenantConfig.model_validate(raw)


def frame(cfg: TenantConfig, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    feats = cfg.model.features
    x = rng.normal(size=(n, len(feats)))
    df = pd.DataFrame(x, columns=feats)
    df[cfg.data.label] = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n) > 1.5).astype(np.int64)
    return df


def test_row_shards_cover_every_row_once_in_order():
    cfg = fraud_cfg()
    df = frame(cfg, 1001, 0)
    parts = xgboost_trainer.row_shards(df, cfg.model.features, cfg.data.label, 3)
    assert [len(p["x"]) for p in parts] == [333, 334, 334]
    assert all(p["x"].dtype == np.float32 for p in parts)
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]),
                                  df[cfg.model.features].to_numpy(np.float32))
    np.testing.assert_array_equal(np.concatenate([p["y"] for p in parts]), df[cfg.data.label].to_numpy())


def test_group_shards_keep_every_query_whole():
    frame_ = pd.DataFrame({lightgbm_ranker.GROUP: np.repeat(np.arange(7), 5), "x": np.arange(35.0)})
    parts = lightgbm_ranker.group_shards(frame_, 3)
    assert sum(map(len, parts)) == len(frame_)
    owners = {g: i for i, p in enumerate(parts) for g in p[lightgbm_ranker.GROUP].unique()}
    assert len(owners) == 7  # no query in two shards
    assert lightgbm_ranker.group_shards(frame_, 1)[0] is frame_


def test_a_worker_reserves_the_cpus_its_threads_use(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert xgboost_trainer.worker_cpus(fraud_cfg(num_cpus=2, num_workers=1)) == 2
    assert xgboost_trainer.worker_cpus(fraud_cfg(num_cpus=4, num_workers=2)) == 2  # one local Ray, shared
    assert xgboost_trainer.worker_cpus(fraud_cfg(num_cpus=2, num_workers=3)) == 1
    cfg = fraud_cfg(num_cpus=2, num_workers=1)
    assert xgboost_trainer.base_params(cfg, frame(cfg, 100, 0))["nthread"] == 2
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # a RayJob: each worker pod has num_cpus
    assert xgboost_trainer.worker_cpus(fraud_cfg(num_cpus=4, num_workers=2)) == 4


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_train_fit_matches_a_direct_fit(tmp_path, workers):
    """Through Ray Train (one worker, or two sharing the rows through xgboost's collective), the model
    scores the validation rows as a direct xgboost fit on all rows does."""
    cfg = fraud_cfg(num_workers=workers)
    tr, va = frame(cfg, 4000, 1), frame(cfg, 1000, 2)
    feats, label = cfg.model.features, cfg.data.label
    trained = xgboost_trainer.train(cfg, tr, va, tmp_path)
    rounds = trained.best_iteration + 1  # train() keeps the rounds up to the best validation PR-AUC
    assert trained.model.num_boosted_rounds() == rounds
    direct = xgboost.train(xgboost_trainer.base_params(cfg, tr), xgboost.DMatrix(tr[feats], label=tr[label]),
                           num_boost_round=rounds)
    auc_ray = roc_auc_score(va[label], xgboost_trainer.predict(trained.model, va))
    auc_direct = roc_auc_score(va[label], direct.predict(xgboost.DMatrix(va[feats])))
    if workers == 1:  # the same rows, the same params: the same model
        assert auc_ray == pytest.approx(auc_direct, abs=1e-9)
    else:  # quantile sketches merged across workers: nearly the same model
        assert auc_ray == pytest.approx(auc_direct, abs=0.02)
    assert auc_ray > 0.85
