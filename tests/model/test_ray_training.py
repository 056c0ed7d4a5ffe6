"""Ray Train across workers: each worker's shard through the object store (not Ray Data), the CPUs a
worker reserves, and real two-worker fits that train ONE model (xgboost's collective, LightGBM's
data-parallel network): disjoint shards adding up to the training set (the workers' own manifests),
the same trees as one worker on all rows, and a worker killed mid-fit failing the step."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from mlplatform.config import TenantConfig
from mlplatform.training import distributed, lightgbm_ranker, xgboost_trainer
from tests.conftest import FRAUD_TENANT, REPO

SEARCH_TENANT = REPO / "examples" / "search" / "tenant.yaml"
# deterministic recipes (no row or column sampling) so one worker and two can build the same trees
XGB_PARAMS = {"max_depth": 4, "eta": 0.3, "subsample": 1.0, "colsample_bytree": 1.0}
# min_data_in_leaf 1: LightGBM checks it against leaf counts it estimates from hessians, and in
# data-parallel mode those estimates differ from one machine's (the hessian sums themselves agree)
LGB_PARAMS = {"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 1}


def fraud_cfg(params: dict | None = None, rounds: int = 20, early: int | None = 21, **ray) -> TenantConfig:
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["model"]["ray"] = {"num_cpus": 2, "num_workers": 1} | ray
    raw["model"]["num_boost_round"], raw["model"]["early_stopping_rounds"] = rounds, early
    if params is not None:
        raw["model"]["params"] = params
    raw["model"]["tune"]["enabled"] = False  # the fit itself, with these params (tuning: test_tuning.py)
    return TenantConfig.model_validate(raw)


def search_cfg(workers: int, rounds: int = 8, params: dict = LGB_PARAMS) -> TenantConfig:
    raw = copy.deepcopy(yaml.safe_load(SEARCH_TENANT.read_text()))
    raw["model"]["ray"] = {"num_cpus": 2, "num_workers": workers}
    raw["model"]["num_boost_round"], raw["model"]["early_stopping_rounds"] = rounds, None
    raw["model"]["params"] = params
    raw["model"]["tune"]["enabled"] = False  # the fit itself, with these params (tuning: test_tuning.py)
    return TenantConfig.model_validate(raw)


def frame(cfg: TenantConfig, n: int, seed: int) -> pd.DataFrame:
    """Integer-valued features (fewer distinct values than histogram bins): the bins are the values
    themselves whichever worker's sample found them, so split candidates agree across group sizes."""
    rng = np.random.default_rng(seed)
    feats = cfg.model.features
    x = rng.integers(0, 40, size=(n, len(feats))).astype(np.float64)
    df = pd.DataFrame(x, columns=feats)
    df[cfg.data.label] = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=10, size=n) > 45).astype(np.int64)
    return df


def ranking_frame(cfg: TenantConfig, queries: int, seed: int, docs: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    feats, n = cfg.model.features, queries * docs
    x = rng.integers(0, 30, size=(n, len(feats))).astype(np.float64)
    df = pd.DataFrame(x, columns=feats)
    df[cfg.ranking.group] = np.repeat([f"q{seed}-{i}" for i in range(queries)], docs)
    score = x[:, 0] + 0.5 * x[:, 2] + rng.normal(scale=8, size=n)
    df[cfg.data.label] = np.clip((score / 12).astype(int), 0, 4)
    return df


def test_row_shards_cover_every_row_once_in_order():
    cfg = fraud_cfg()
    df = frame(cfg, 1001, 0)
    rows = distributed.row_arrays(df, cfg.model.features, cfg.data.label)
    parts = distributed.row_shards(rows, 3)
    assert [len(p["x"]) for p in parts] == [333, 334, 334]
    assert all(p["x"].dtype == np.float32 for p in parts)
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]),
                                  df[cfg.model.features].to_numpy(np.float32))
    np.testing.assert_array_equal(np.concatenate([p["y"] for p in parts]), df[cfg.data.label].to_numpy())


def test_group_shards_keep_every_query_whole():
    frame_ = pd.DataFrame({lightgbm_ranker.GROUP: np.repeat(np.arange(7), 5), "x": np.arange(35.0)})
    parts = distributed.group_shards(frame_, lightgbm_ranker.GROUP, 3)
    assert sum(map(len, parts)) == len(frame_)
    owners = {g: i for i, p in enumerate(parts) for g in p[lightgbm_ranker.GROUP].unique()}
    assert len(owners) == 7  # no query in two shards
    assert distributed.group_shards(frame_, lightgbm_ranker.GROUP, 1)[0] is frame_


def test_manifests_catch_a_row_missing_repeated_or_unseen(tmp_path):
    """The driver's check of the workers' manifests: the shards must be the training set split once."""
    df = pd.DataFrame({"a": np.arange(10.0), "y": np.arange(10) % 2})
    whole, valid = distributed.fingerprint(df), distributed.fingerprint(df.iloc[:3])

    def manifests(*parts, valid_parts=None):
        for p in tmp_path.glob("worker-*.json"):
            p.unlink()
        for rank, part in enumerate(parts):
            seen = valid_parts[rank] if valid_parts else df.iloc[:3]
            distributed.write_manifest(tmp_path, rank, distributed.fingerprint(part), distributed.fingerprint(seen))
        return tmp_path

    ok = distributed.check_manifests(manifests(df.iloc[:4], df.iloc[4:]), 2, whole, valid)
    assert [m["train"]["rows"] for m in ok] == [4, 6]
    with pytest.raises(distributed.ShardMismatch, match="not the 10 training rows split once"):
        distributed.check_manifests(manifests(df.iloc[:5], df.iloc[4:]), 2, whole, valid)  # row 4 twice
    with pytest.raises(distributed.ShardMismatch, match="not the 10 training rows split once"):
        distributed.check_manifests(manifests(df.iloc[:4], df.iloc[[4, 5, 6, 7, 8, 8]]), 2, whole, valid)  # 9 lost
    with pytest.raises(distributed.ShardMismatch, match="ranks 0..2"):
        distributed.check_manifests(manifests(df.iloc[:4], df.iloc[4:]), 3, whole, valid)
    with pytest.raises(distributed.ShardMismatch, match=r"workers \[1\] did not see the whole validation set"):
        distributed.check_manifests(manifests(df.iloc[:4], df.iloc[4:], valid_parts=[df.iloc[:3], df.iloc[:2]]),
                                    2, whole, valid)


def test_a_worker_reserves_the_cpus_its_threads_use(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert distributed.worker_cpus(fraud_cfg(num_cpus=2, num_workers=1)) == 2
    assert distributed.worker_cpus(fraud_cfg(num_cpus=4, num_workers=2)) == 2  # one local Ray, shared
    assert distributed.worker_cpus(fraud_cfg(num_cpus=2, num_workers=3)) == 1
    cfg = fraud_cfg(num_cpus=2, num_workers=1)
    assert xgboost_trainer.base_params(cfg, frame(cfg, 100, 0))["nthread"] == 2
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # a RayJob: each worker pod has num_cpus
    assert distributed.worker_cpus(fraud_cfg(num_cpus=4, num_workers=2)) == 4


def assert_split_once(trained, train_rows: int, valid_rows: int, workers: int) -> None:
    """What the workers said they trained on: disjoint shards whose union is the training set (the
    driver checked the hashes), each about 1/workers of it, and every validation row on each."""
    assert [m["rank"] for m in trained.workers] == list(range(workers))
    rows = [m["train"]["rows"] for m in trained.workers]
    assert sum(rows) == train_rows and all(r < train_rows for r in rows) == (workers > 1)
    assert len({m["train"]["hash"] for m in trained.workers}) == workers
    assert all(m["valid"]["rows"] == valid_rows for m in trained.workers)
    assert len({m["valid"]["hash"] for m in trained.workers}) == 1


def test_two_xgboost_workers_train_the_one_worker_model(tmp_path):
    """Two workers on halves of the rows, joined by xgboost's collective, build the trees one worker
    builds on all of them: same splits, same gains, same covers (hessian sums over ALL rows; a model
    of either half would have about half the root cover, a model per worker different splits)."""
    one, two = fraud_cfg(XGB_PARAMS, num_workers=1), fraud_cfg(XGB_PARAMS, num_workers=2)
    tr, va = frame(one, 4000, 1), frame(one, 1000, 2)
    single = xgboost_trainer.train(one, tr, va, tmp_path / "one")
    pair = xgboost_trainer.train(two, tr, va, tmp_path / "two")
    assert_split_once(pair, 4000, 1000, 2)
    assert_split_once(single, 4000, 1000, 1)
    assert pair.best_iteration == single.best_iteration > 0
    pd.testing.assert_frame_equal(pair.model.trees_to_dataframe(), single.model.trees_to_dataframe(), rtol=1e-6)


def test_two_lightgbm_workers_train_the_one_worker_ranker(tmp_path):
    """The ranker on two workers joins LightGBM's network (Ray Train's get_network_params): whole
    queries per worker, one model whose trees are the one-worker model's (split, gain, leaf value,
    hessian sum), not one model per shard."""
    one, two = search_cfg(1), search_cfg(2)
    tr, va = ranking_frame(one, 200, 1), ranking_frame(one, 60, 2)
    single = lightgbm_ranker.train(one, tr, va, tmp_path / "one")
    pair = lightgbm_ranker.train(two, tr, va, tmp_path / "two")
    assert_split_once(pair, 4000, 1200, 2)
    assert all(m["train"]["rows"] % 20 == 0 for m in pair.workers)  # whole queries of 20 documents
    cols = ["tree_index", "node_index", "split_feature", "threshold", "split_gain", "value", "weight"]
    a, b = single.model.trees_to_dataframe(), pair.model.trees_to_dataframe()
    assert a["tree_index"].nunique() == 8
    pd.testing.assert_frame_equal(b[cols], a[cols], rtol=1e-6)
    assert b.iloc[0]["count"] == 4000  # the root holds every worker's rows, not one shard's 2,000


@pytest.mark.parametrize("minimum", [1, 10])
def test_a_validation_window_peaking_at_round_one_keeps_the_minimum_rounds(tmp_path, minimum):
    """Validation labels that run against the training signal: every round makes the validation
    metric worse, early stopping's best is the first round, and the model keeps
    `model.min_boost_rounds` rounds instead of one tree."""
    raw = yaml.safe_load(FRAUD_TENANT.read_text())
    raw["model"] |= {"ray": {"num_cpus": 2, "num_workers": 1}, "num_boost_round": 40, "early_stopping_rounds": 15,
                     "min_boost_rounds": minimum, "params": XGB_PARAMS}
    cfg = TenantConfig.model_validate(raw)
    tr, va = frame(cfg, 3000, 1), frame(cfg, 1000, 2)
    va[cfg.data.label] = 1 - va[cfg.data.label]
    trained = xgboost_trainer.train(cfg, tr, va, tmp_path)
    assert trained.best_iteration + 1 == minimum == trained.model.num_boosted_rounds()


def _train_worker_pids() -> list[int]:
    import ray._private.state

    return [a["Pid"] for a in ray._private.state.actors().values()
            if a.get("ActorClassName") == "RayTrainWorker" and a.get("State") == "ALIVE"]


def long_xgboost_fit() -> tuple:
    cfg = fraud_cfg(XGB_PARAMS | {"max_depth": 8, "eta": 0.01}, rounds=20000, early=None, num_workers=2)
    return xgboost_trainer, cfg, frame(cfg, 20000, 3), frame(cfg, 2000, 4)


def long_lightgbm_fit() -> tuple:
    cfg = search_cfg(2, rounds=20000, params=LGB_PARAMS | {"num_leaves": 63})
    return lightgbm_ranker, cfg, ranking_frame(cfg, 1000, 3), ranking_frame(cfg, 100, 4)


@pytest.fixture
def own_ray():
    """A local Ray of the test's own: no actor an earlier fit of this session left behind holds the
    CPUs the two workers need (in a full CI run they never started), and what the test leaves when
    it fails (a controller waiting on a dead group) goes with the shutdown: Ray Train's controller
    is an actor of the driver's job (ray/train/v2/api/data_parallel_trainer.py), so later fits get
    the CPUs back instead of waiting for them forever."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


@pytest.mark.parametrize("fit", [long_xgboost_fit, long_lightgbm_fit], ids=["xgboost", "lightgbm"])
def test_a_worker_killed_mid_training_fails_the_step(tmp_path, fit, own_ray):
    """SIGKILL one of two workers while they boost: the fit fails (FailureConfig max_failures=0) with
    an error naming the tenant and the group, Ray's cause attached; no model comes back, and the
    surviving worker, waiting on its dead peer in the collective, does not hang the step."""
    trainer, cfg, tr, va = fit()
    outcome: dict = {}

    def run():
        try:
            outcome["trained"] = trainer.train(cfg, tr, va, tmp_path)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    distributed.ensure_ray(cfg)
    before = set(_train_worker_pids())
    thread.start()
    deadline = time.monotonic() + 120
    while len(pids := set(_train_worker_pids()) - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(pids) == 2, "the two Ray Train workers never started"
    # into the boosting rounds (20,000 of them take minutes): each worker has spent CPU seconds on them
    while min(psutil.Process(p).cpu_times().user for p in pids) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert thread.is_alive(), "training ended before a worker could be killed"
    os.kill(max(pids), signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive(), "the surviving worker hung after its peer died"
    assert "trained" not in outcome
    err = outcome["error"]
    assert isinstance(err, distributed.WorkerGroupFailed), repr(err)
    assert f"tenant {cfg.name!r}: training on 2 Ray Train worker(s) failed, no model was produced" in str(err)
    # Ray's cause names the dead worker's actor: a failed health check or the worker's task dying
    # (whichever the controller sees first) when the kill lands while boosting, a failed
    # initialisation when a busy machine's start-up is still running at the kill
    causes = ("A worker health check failed", "The actor died unexpectedly before finishing this task",
              "At least one of the worker actors failed to initialize")
    assert any(cause in str(err) for cause in causes), str(err)
