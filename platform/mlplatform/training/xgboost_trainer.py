"""XGBoost binary classifier trained through Ray Train on a local Ray, with an optional Ray Tune search.

`trainer` is this module as a `mlplatform.contracts.Trainer` (train, predict, load, log) with the
optional matrix scorer (`predict_matrix(model, x)` on rows x the model's inputs, which lets the
online predictor skip building a DataFrame). The tenant file names it in `model.trainer`
(`mlplatform.training.xgboost_trainer:trainer`), so another library plugs in the same way.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from sklearn.metrics import average_precision_score

from mlplatform.config import TenantConfig
from mlplatform.training.distributed import (array_frame, check_manifests, ensure_ray, fingerprint, fit, kept_rounds,
                                             put_shards, row_arrays, row_shards, run_config, worker_cpus,
                                             write_manifest)
from mlplatform.training.time_folds import Folds, best_rounds, record, thin, time_folds
from mlplatform.training.tuning import fold_score, search, split_rounds

MODEL_FILE = "model.ubj"


@dataclass
class Trained:
    model: xgboost.Booster
    params: dict[str, Any]
    best_iteration: int
    importance: dict[str, float] = field(default_factory=dict)
    tune_trials: list[dict] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)  # each Ray Train worker's manifest (distributed.py)
    selection: dict = field(default_factory=dict)  # how the rounds were chosen (time_folds.record)


# `imbalance: auto` weighs positives only when the training rows hold fewer than this many. Measured
# (bench/recipe_bench.py, fraud simulation, PR-AUC on unseen rows): with 8 training positives the
# class-ratio weight made the model (0.19 vs 0.03 unweighted); with 80 or more it cost PR-AUC (0.82
# vs 0.84 at 80, 0.858 vs 0.870 at 800), reordering the top of the ranking, and lost to defaults.
AUTO_WEIGHT_BELOW = 50


def base_params(cfg: TenantConfig, train_df: pd.DataFrame) -> dict[str, Any]:
    # early stopping watches the LAST eval metric: PR-AUC, the metric that matters for rare positives
    params = {"objective": "binary:logistic", "eval_metric": ["auc", "aucpr"], "tree_method": "hist",
              "nthread": worker_cpus(cfg), "seed": 0}
    pos = float(train_df[cfg.data.label].sum())
    if cfg.model.imbalance == "scale_pos_weight" or (cfg.model.imbalance == "auto" and pos < AUTO_WEIGHT_BELOW):
        # weight positives by the class ratio so a rare class is not ignored
        params["scale_pos_weight"] = max(1.0, (len(train_df) - pos) / max(pos, 1.0))
    return params | dict(cfg.model.params)


def _train_loop(config: dict) -> None:
    """Runs on each Ray Train worker: its shard of the training rows and the whole validation set ->
    its part of one booster. Ray Train's XGBoostConfig runs this inside xgboost's collective (a
    CommunicatorContext joined to the RabitTracker on the driver, ray/train/xgboost/config.py) when
    there is more than one worker, so every round's histograms are summed over all workers' rows and
    all workers hold the same booster; rank 0 saves it.

    Reports once, at the end: RayTrainReportCallback reports every boosting round, and each Ray Train
    v2 report waits for the controller's next poll (measured: ~2 s a round at the default interval).
    """
    import ray
    import ray.train

    feats = config["features"]
    rank = ray.train.get_context().get_world_rank()
    train, valid = ray.get(config["train"][rank]), ray.get(config["valid"])  # zero-copy: see put_shards
    dtrain = xgboost.DMatrix(train["x"], label=train["y"], feature_names=feats)
    dvalid = xgboost.DMatrix(valid["x"], label=valid["y"], feature_names=feats)
    booster = xgboost.train(
        config["params"],
        dtrain,
        num_boost_round=config["num_boost_round"],
        # validation only: early stopping reads the last set; AUC and PR-AUC on the training rows every
        # round were never read and made the fit 2-3x slower (measured at 20k and 500k rows)
        evals=[(dvalid, "valid")],
        early_stopping_rounds=config["early_stopping_rounds"],
        verbose_eval=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_manifest(tmp, rank, fingerprint(array_frame(train)), fingerprint(array_frame(valid)))
        if rank == 0:
            booster.save_model(os.path.join(tmp, MODEL_FILE))
        best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
        ray.train.report({"best_iteration": best}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _fit(cfg: TenantConfig, params: dict, train_df: pd.DataFrame, valid_df: pd.DataFrame,
         storage: Path, rounds: int | None = None) -> tuple[xgboost.Booster, list[dict]]:
    """One booster from `num_workers` workers, and each worker's manifest (distributed.py); `rounds`
    already chosen (time folds): exactly that many, no early stopping."""
    from ray.train import ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    feats, label, workers = cfg.model.features, cfg.data.label, cfg.model.ray.num_workers
    train_rows, valid_rows = row_arrays(train_df, feats, label), row_arrays(valid_df, feats, label)
    trainer = XGBoostTrainer(
        _train_loop,
        train_loop_config={
            "features": feats,
            "params": params,
            "num_boost_round": rounds or cfg.model.num_boost_round,
            "early_stopping_rounds": None if rounds else cfg.model.early_stopping_rounds,
            # each worker's rows as object refs, not Ray Data `datasets=` (put_shards says why)
            "train": put_shards(row_shards(train_rows, workers)),
            "valid": put_shards([valid_rows])[0],  # one entry, read whole by every worker
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                     resources_per_worker={"CPU": worker_cpus(cfg)}),
        run_config=run_config(cfg, storage, "train"),
    )
    result = fit(trainer, cfg)
    with result.checkpoint.as_directory() as path:
        manifests = check_manifests(path, workers, fingerprint(array_frame(train_rows)),
                                    fingerprint(array_frame(valid_rows)))
        return xgboost.Booster(model_file=os.path.join(path, MODEL_FILE)), manifests


def _fold_curves(params: dict, folds: Folds, feats: list[str], label: str, rounds: int) -> list[np.ndarray]:
    """Per time fold, early stopping's metric (the last eval metric) on its window at every round,
    oriented so that higher is better (every round trained: a mean over folds needs them all)."""
    curves = []
    for i in range(len(folds.windows)):
        tr, va = folds.parts(i)
        result: dict = {}
        xgboost.train(params, xgboost.DMatrix(tr[feats], label=tr[label]), num_boost_round=rounds,
                      evals=[(xgboost.DMatrix(va[feats], label=va[label]), "valid")], evals_result=result,
                      verbose_eval=False)
        name, values = list(result["valid"].items())[-1]
        higher = name.split("@")[0] in {"auc", "aucpr", "map", "ndcg", "pre"}
        curves.append(np.asarray(values) * (1 if higher else -1))
    return curves


def _fold_choice(cfg: TenantConfig, params: dict, folds: Folds, fixed: int | None = None) -> dict:
    """The rounds the time folds choose (at least model.min_boost_rounds; `fixed`: those) and each
    fold's score there."""
    m = cfg.model
    curves = _fold_curves(params, folds, m.features, cfg.data.label, fixed or m.num_boost_round)
    rounds = fixed or max(best_rounds(curves)[0], min(m.min_boost_rounds, m.num_boost_round))
    return fold_score([c[min(rounds, len(c)) - 1] for c in curves]) | {"rounds": rounds}


def _choose_over_folds(cfg: TenantConfig, params: dict, folds: Folds) -> dict:
    """`_fold_choice` as a Ray task (on a KubeRay cluster it runs on a worker, not the driver)."""
    import ray

    cpus = worker_cpus(cfg)
    task = ray.remote(num_cpus=cpus)(_fold_choice)
    return ray.get(task.remote(cfg, params | {"nthread": cpus}, folds))


def _tune(cfg: TenantConfig, params: dict, train_df: pd.DataFrame, valid_df: pd.DataFrame, storage: Path,
          over: Folds | None = None):
    """The shared Ray Tune search (tuning.py): each trial trains in-process on one thread and scores
    PR-AUC on `folds` interleaved slices of the validation rows (those holding both classes), or,
    given time folds `over` (a thin validation window), on those folds at the rounds they choose."""
    import ray

    feats, label, folds = cfg.model.features, cfg.data.label, cfg.model.tune.folds
    train_ref = ray.put(train_df[feats + [label]])
    valid_ref = ray.put(valid_df[feats + [label]])
    over_ref = ray.put(over) if over is not None else None

    def trial(config: dict) -> dict:
        space, fixed = split_rounds(config)  # fixed: the baseline's rounds, no early stopping
        if over_ref is not None:
            return _fold_choice(cfg, params | space | {"nthread": 1}, ray.get(over_ref), fixed)
        tr, va = ray.get(train_ref), ray.get(valid_ref)
        booster = xgboost.train(
            params | space | {"nthread": 1}, xgboost.DMatrix(tr[feats], label=tr[label]),
            num_boost_round=fixed or cfg.model.num_boost_round,
            evals=[(xgboost.DMatrix(va[feats], label=va[label]), "valid")],
            early_stopping_rounds=None if fixed else cfg.model.early_stopping_rounds, verbose_eval=False,
        )
        rounds = fixed or kept_rounds(cfg, booster.best_iteration + 1, booster.num_boosted_rounds())
        scores = booster.predict(xgboost.DMatrix(va[feats]), iteration_range=(0, rounds))
        y, part = va[label].to_numpy(), np.arange(len(va)) % folds
        both = [f for f in range(folds) if len(np.unique(y[part == f])) == 2] or None
        return fold_score([average_precision_score(y[part == f], scores[part == f]) for f in both]
                          if both else [average_precision_score(y, scores)]) | {"rounds": rounds}

    return search(cfg, trial, storage, "pr_auc")


def train(cfg: TenantConfig, train_df: pd.DataFrame, valid_df: pd.DataFrame, storage: Path | None = None) -> Trained:
    ensure_ray(cfg)
    storage = Path(storage or tempfile.mkdtemp(prefix="ray-train-")).resolve()
    params = base_params(cfg, train_df)
    folds = time_folds(cfg, train_df, valid_df) if thin(cfg, valid_df) else None
    trials: list[dict] = []
    choice: dict = {}
    if cfg.model.tune.enabled and cfg.model.tune.space:
        best_space, trials = _tune(cfg, params, train_df, valid_df, storage, folds)
        best_space, fixed = split_rounds(best_space)
        params |= best_space
        choice = next(t for t in trials if t["selected"]) if folds is not None else {"rounds": fixed}
    elif folds is not None:
        choice = _choose_over_folds(cfg, params, folds)
    selection = record(cfg, valid_df, folds, choice.get("rounds"), choice.get("folds"))
    booster, workers = _fit(cfg, params, train_df, valid_df, storage, choice.get("rounds"))
    best = kept_rounds(cfg, int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1)) + 1,
                       booster.num_boosted_rounds()) - 1
    if best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]  # keep the early-stopped model only: serving needs no iteration_range
    gain = booster.get_score(importance_type="gain")
    return Trained(booster, params, best, {f: float(gain.get(f, 0.0)) for f in cfg.model.features}, trials,
                   workers, selection)


def predict(model: xgboost.Booster, frame: pd.DataFrame) -> np.ndarray:
    return predict_matrix(model, frame[model.feature_names].to_numpy(np.float32))


def predict_matrix(model: xgboost.Booster, x: np.ndarray) -> np.ndarray:
    """Scores of rows x `model.feature_names` (the predictor's pandas-free path, serving.predictor).
    inplace_predict on a float32 array skips building a DMatrix: ~3x cheaper for one row."""
    return model.inplace_predict(np.asarray(x, dtype=np.float32))


def log_model(model: xgboost.Booster, signature, input_example) -> Any:
    import mlflow.xgboost

    return mlflow.xgboost.log_model(model, name="model", signature=signature, input_example=input_example,
                                    model_format="ubj")


def load_model(uri: str) -> xgboost.Booster:
    import mlflow.xgboost

    return mlflow.xgboost.load_model(uri)


class XGBoostTrainer:
    """The functions above as a Trainer object (mlplatform.contracts), what `model.trainer` names."""

    train = staticmethod(train)
    predict = staticmethod(predict)
    predict_matrix = staticmethod(predict_matrix)
    load = staticmethod(load_model)
    log = staticmethod(log_model)


trainer = XGBoostTrainer()
