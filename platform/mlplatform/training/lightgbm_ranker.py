"""LambdaMART (LightGBM `lambdarank`) trained through Ray Train on a local Ray.

`trainer` is this module as a `mlplatform.contracts.Trainer` (train, predict, load, log), named in
the tenant file as `mlplatform.training.lightgbm_ranker:trainer`. Rows are grouped by
`ranking.group` (a query): the train loop sorts each shard by group and hands LightGBM the group
sizes, so every query's documents are ranked against each other. Optional per-row weights come
from `ranking.weight` (click-derived labels weigh less than judgments).

With more than one worker the workers train ONE model: each holds a shard of whole queries (the
lambdarank gradients of a query need all its documents) and the whole validation set, and joins
LightGBM's data-parallel network with the parameters Ray Train's LightGBM backend sets up for its
workers (`ray.train.lightgbm.get_network_params`, ray/train/lightgbm/config.py: every worker's
address and port). Like the XGBoost trainer, the loop reports once, at the end, with the checkpoint (a
Ray Train v2 report is a round trip to the controller), and reads its shard from the object store
rather than Ray Data (`distributed.put_shards` says why). distributed.py has what both trainers share.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.ranking.metrics import group_sizes, ranking_metrics
from mlplatform.training.distributed import (check_manifests, ensure_ray, fingerprint, fit, group_shards, kept_rounds,
                                             put_shards, run_config, worker_cpus, write_manifest)
from mlplatform.training.tuning import fold_score, search, split_rounds

MODEL_FILE = "model.txt"
WEIGHT = "_weight"
GROUP = "_group"


@dataclass
class Trained:
    model: lightgbm.Booster
    params: dict[str, Any]
    best_iteration: int
    importance: dict[str, float] = field(default_factory=dict)
    tune_trials: list[dict] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)  # each Ray Train worker's manifest (distributed.py)


def stopping_k(cfg: TenantConfig) -> int:
    """The k of the gate's NDCG (metrics.primary `ndcg_at_K`), else the largest reported k."""
    m = re.fullmatch(r"ndcg_at_(\d+)", cfg.metrics.primary)
    return int(m.group(1)) if m else max(cfg.ranking.k_values)


def base_params(cfg: TenantConfig) -> dict[str, Any]:
    r = cfg.ranking
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        # one k: LightGBM sorts eval_at and early stopping (first_metric_only) would watch the
        # smallest, e.g. NDCG@1, and stop long before NDCG@10 (the gate) stops improving; the
        # reported NDCG@k for every k comes from ranking/metrics.py on the predictions
        "eval_at": [stopping_k(cfg)],
        "label_gain": [float(2**i - 1) for i in range(r.max_label + 1)],
        "num_threads": worker_cpus(cfg),
        "seed": 0,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }
    return params | dict(cfg.model.params)


def _dataset(df: pd.DataFrame, feats: list[str], label: str, reference=None) -> lightgbm.Dataset:
    df = df.sort_values(GROUP, kind="stable")
    weight = df[WEIGHT].to_numpy(np.float64) if WEIGHT in df.columns else None
    return lightgbm.Dataset(df[feats].to_numpy(np.float64), label=df[label].to_numpy(np.float64),
                            group=group_sizes(df[GROUP].to_numpy()), weight=weight, feature_name=feats,
                            reference=reference, free_raw_data=False)


def network_params(world_size: int) -> dict[str, Any]:
    """LightGBM's data-parallel settings on a worker of a group of `world_size`: the machines list
    and this worker's port from Ray Train's LightGBM backend, the data-parallel tree learner, and
    `pre_partition` (each worker's rows are its own, not to be split again), as Ray Train's
    LightGBMTrainer documents (ray/train/v2/lightgbm/lightgbm_trainer.py). One worker: none."""
    if world_size == 1:
        return {}
    from ray.train.lightgbm import get_network_params

    network = get_network_params()
    if network.get("num_machines") != world_size:  # never N single-machine models
        raise RuntimeError(f"Ray Train set up LightGBM's network for {network.get('num_machines')} machines, "
                           f"the group has {world_size} workers")
    return {"tree_learner": "data", "pre_partition": True, **network}


def _train_loop(config: dict) -> None:
    """One Ray Train worker: its shard of whole queries and the whole validation set -> its part of
    one booster (LightGBM's network sums every round's histograms over the workers); rank 0 saves it."""
    import ray
    import ray.train

    feats, label = config["features"], config["label"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    train, valid = ray.get(config["train"][rank]), ray.get(config["valid"])
    params = config["params"] | network_params(context.get_world_size())
    dtrain = _dataset(train, feats, label)
    dvalid = _dataset(valid, feats, label, reference=dtrain)
    callbacks = []
    if config["early_stopping_rounds"]:
        callbacks.append(lightgbm.early_stopping(config["early_stopping_rounds"], first_metric_only=True,
                                                 verbose=False))
    booster = lightgbm.train(params, dtrain, num_boost_round=config["num_boost_round"],
                             valid_sets=[dvalid], valid_names=["valid"], callbacks=callbacks)
    with tempfile.TemporaryDirectory() as tmp:
        write_manifest(tmp, rank, fingerprint(train), fingerprint(valid))
        if rank == 0:  # every round trained: the driver keeps the best ones (kept_rounds)
            booster.save_model(os.path.join(tmp, MODEL_FILE), num_iteration=-1)
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        ray.train.report({"best_iteration": int(best)}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _frame(cfg: TenantConfig, df: pd.DataFrame) -> pd.DataFrame:
    r = cfg.ranking
    out = df[cfg.model.features + [cfg.data.label]].copy()
    # group ids as dense ints (Ray Data and LightGBM need no strings), in order of appearance
    out[GROUP] = pd.factorize(df[r.group])[0].astype(np.int64)
    if WEIGHT in df.columns:  # set by the ranking step (click-derived labels weigh less)
        out[WEIGHT] = df[WEIGHT].astype(np.float64).to_numpy()
    elif r.weight and r.weight in df.columns:
        out[WEIGHT] = df[r.weight].astype(np.float64).to_numpy()
    return out


def _tune(cfg: TenantConfig, params: dict, train_frame: pd.DataFrame, valid_frame: pd.DataFrame, storage: Path):
    """The shared Ray Tune search (tuning.py): each trial trains in-process on one thread and scores
    NDCG@k (the gate's k) on `folds` folds of whole validation queries."""
    import ray

    feats, label, folds, k = cfg.model.features, cfg.data.label, cfg.model.tune.folds, stopping_k(cfg)
    train_ref, valid_ref = ray.put(train_frame), ray.put(valid_frame)

    def trial(config: dict) -> dict:
        space, fixed = split_rounds(config)  # fixed: the baseline's rounds, no early stopping
        tr, va = ray.get(train_ref), ray.get(valid_ref)
        dtrain = _dataset(tr, feats, label)
        callbacks = ([lightgbm.early_stopping(cfg.model.early_stopping_rounds, first_metric_only=True, verbose=False)]
                     if cfg.model.early_stopping_rounds and not fixed else [])
        booster = lightgbm.train(params | space | {"num_threads": 1}, dtrain,
                                 num_boost_round=fixed or cfg.model.num_boost_round,
                                 valid_sets=[_dataset(va, feats, label, reference=dtrain)], callbacks=callbacks)
        rounds = fixed or kept_rounds(cfg, booster.best_iteration or booster.current_iteration(),
                                      booster.current_iteration())
        scores = booster.predict(va[feats].to_numpy(np.float64), num_iteration=rounds, num_threads=1)
        group, y = va[GROUP].to_numpy(), va[label].to_numpy()
        return fold_score([ranking_metrics(y[group % folds == f], scores[group % folds == f], group[group % folds == f],
                                           [k])[f"ndcg_at_{k}"] for f in range(folds)]) | {"rounds": rounds}

    return search(cfg, trial, storage, f"ndcg_at_{k}")


def train(cfg: TenantConfig, train_df: pd.DataFrame, valid_df: pd.DataFrame, storage: Path | None = None) -> Trained:
    from ray.train import ScalingConfig
    from ray.train.lightgbm import LightGBMTrainer

    if cfg.ranking is None:
        raise ValueError(f"tenant {cfg.name!r}: the lightgbm ranker needs a ranking section (task: ranking)")
    ensure_ray(cfg)
    storage = Path(storage or tempfile.mkdtemp(prefix="ray-train-")).resolve()
    params = base_params(cfg)
    workers = cfg.model.ray.num_workers
    train_frame, valid_frame = _frame(cfg, train_df), _frame(cfg, valid_df)
    trials: list[dict] = []
    rounds = None  # chosen by the search (the baseline's): train exactly that many
    if cfg.model.tune.enabled and cfg.model.tune.space:
        best_space, trials = _tune(cfg, params, train_frame, valid_frame, storage)
        best_space, rounds = split_rounds(best_space)
        params |= best_space
    trainer = LightGBMTrainer(
        _train_loop,
        train_loop_config={"features": cfg.model.features, "label": cfg.data.label, "params": params,
                           "num_boost_round": rounds or cfg.model.num_boost_round,
                           "early_stopping_rounds": None if rounds else cfg.model.early_stopping_rounds,
                           "train": put_shards(group_shards(train_frame, GROUP, workers)),
                           "valid": put_shards([valid_frame])[0]},  # whole, on every worker
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                     resources_per_worker={"CPU": worker_cpus(cfg)}),
        run_config=run_config(cfg, storage, "train"),
    )
    result = fit(trainer, cfg)
    with result.checkpoint.as_directory() as path:
        manifests = check_manifests(path, workers, fingerprint(train_frame), fingerprint(valid_frame))
        booster = lightgbm.Booster(model_file=os.path.join(path, MODEL_FILE))
    # a reloaded booster says best_iteration -1: the worker's report has the number
    best = kept_rounds(cfg, int(result.metrics.get("best_iteration") or booster.current_iteration()),
                       booster.current_iteration())
    if 0 < best < booster.current_iteration():
        booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))  # keep the best rounds only
    gain = dict(zip(booster.feature_name(), booster.feature_importance("gain").tolist()))
    return Trained(booster, params, int(best), {f: float(gain.get(f, 0.0)) for f in cfg.model.features},
                   tune_trials=trials, workers=manifests)


def predict(model: lightgbm.Booster, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Scores (higher ranks first). A frame is read in the model's feature order; an array as given."""
    data = frame[model.feature_name()].to_numpy(np.float64) if isinstance(frame, pd.DataFrame) else frame
    return model.predict(data, num_threads=1)


def log_model(model: lightgbm.Booster, signature, input_example) -> Any:
    import mlflow.lightgbm

    return mlflow.lightgbm.log_model(model, name="model", signature=signature, input_example=input_example)


def load_model(uri: str) -> lightgbm.Booster:
    import mlflow.lightgbm

    return mlflow.lightgbm.load_model(uri)


class LightGBMRanker:
    """The functions above as a Trainer object (mlplatform.contracts), what `model.trainer` names."""

    train = staticmethod(train)
    predict = staticmethod(predict)
    load = staticmethod(load_model)
    log = staticmethod(log_model)


trainer = LightGBMRanker()
