"""The training step for `task: ranking`: judged (and click-labelled) query-document pairs ->
features (Feast item features joined point in time, query-item features from the tenant's
retriever, or the columns of a LETOR file) -> split by query -> ranker (Ray) -> NDCG@k, MRR (with
bootstrap intervals over queries), baselines on the same queries (ranking/baselines.py), retrieval
recall@K -> MLflow run.

Click labels (ranking.clicks) are added to the training side only: evaluation uses judgments.
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from mlplatform.config import TenantConfig
from mlplatform.data.ingest import load_raw, load_table
from mlplatform.features.store import training_frame
from mlplatform.plugins import resolve
from mlplatform.ranking import index
from mlplatform.ranking.clicks import click_labels
from mlplatform.ranking.metrics import per_query_metrics, ranking_metrics, recall_at_k
from mlplatform.training import confidence
from mlplatform.training.baselines import Baseline, BaselineInputs
from mlplatform.training.baselines import run as run_baselines
from mlplatform.training.champion import evaluate_champion
from mlplatform.training.dataset import labelled_as_of, time_split
from mlplatform.training.mlflow_log import log_training_run
from mlplatform.training.trainers import resolve_trainer
from mlplatform.training.training_set import TrainingSet
from mlplatform.workspace import Workspace

SOURCE = "label_source"  # judgment | clicks
WEIGHT = "_weight"


def log_retrieval(retrieval: dict[str, Any]) -> None:
    """Recall@K with the run, and the index's own figures (the retriever's info["metrics"], e.g. an
    approximate index's recall against exact) as metrics. The index itself (and any model it holds,
    such as a query encoder) was logged with the run by the stage step (training_set.log); the
    predictor loads it from there."""
    mlflow.log_dict(retrieval, "retrieval.json")
    figures = retrieval.get("index", {}).get("metrics") or {}
    if figures:
        mlflow.log_metrics({name: float(value) for name, value in figures.items()})


def with_click_labels(cfg: TenantConfig, ws: Workspace, events: pd.DataFrame) -> pd.DataFrame:
    """Judged pairs plus click-labelled pairs nobody judged (IPW-debiased grades, lower weight)."""
    r = cfg.ranking
    events = events.assign(**{SOURCE: "judgment", WEIGHT: events[r.weight] if r.weight else 1.0})
    if not r.clicks:
        return events
    clicks = load_table(cfg, ws, r.clicks.table)
    labels = click_labels(clicks, r.clicks, r.group, r.item).rename(columns={"label": cfg.data.label,
                                                                            "weight": WEIGHT})
    judged = pd.MultiIndex.from_frame(events[[r.group, r.item]])
    labels = labels[~pd.MultiIndex.from_frame(labels[[r.group, r.item]]).isin(judged)]
    # a click-labelled pair takes its query's text and time from the query's judgments
    per_query = events.drop_duplicates(r.group).set_index(r.group)
    carry = [c for c in events.columns if c not in {r.item, cfg.data.label, SOURCE, WEIGHT} | set(cfg.model.features)]
    labels = labels[labels[r.group].isin(per_query.index)]
    extra = labels.join(per_query[[c for c in carry if c != r.group]], on=r.group)
    extra[SOURCE] = "clicks"
    return pd.concat([events, extra[events.columns]], ignore_index=True)


def split(cfg: TenantConfig, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """By the split column (LETOR files) or by time (whole queries: a query has one time)."""
    col = cfg.model.split.column
    if col:
        parts = {v: frame[frame[col] == v].reset_index(drop=True) for v in ("train", "valid", "test")}
        train, valid, test = parts["train"], parts["valid"], parts["test"]
        if valid.empty:  # no validation file: hold out every fifth query of the training file
            groups = pd.factorize(train[cfg.ranking.group])[0]
            held = groups % 5 == 4
            train, valid = train[~held].reset_index(drop=True), train[held].reset_index(drop=True)
        if train.empty or valid.empty:
            raise ValueError(f"split by {col!r} left train {len(train)} / validation {len(valid)} rows")
        return train, valid, (test if not test.empty else None)
    train, valid = time_split(cfg, frame)
    return train, valid, None


def evaluate_recall(retriever, events: pd.DataFrame, cfg: TenantConfig) -> dict[str, dict[str, float]]:
    """Recall@K of each retriever (and their fusion) against the judgments."""
    r = cfg.ranking
    ks = sorted(r.retrieval.recall_at)
    judged = events[events[SOURCE] == "judgment"] if SOURCE in events else events
    rel = judged[judged[cfg.data.label] >= r.relevant_min]
    relevant = rel.groupby(r.group)[r.item].agg(lambda s: set(retriever.positions_of(s).tolist()))
    queries = judged.drop_duplicates(r.group).set_index(r.group)[r.query_text]
    qids = [q for q in queries.index if q in relevant.index]
    found = retriever.retrieve_many([queries[q] for q in qids], max(ks))
    names = list(found[0]) if found else []
    return {name: recall_at_k([f[name] for f in found], [relevant[q] for q in qids], ks) for name in names}


def evaluate(cfg: TenantConfig, model, predict, df: pd.DataFrame, prefix: str = "",
             features: list[str] | None = None) -> dict[str, float]:
    r = cfg.ranking
    y, g = df[cfg.data.label].to_numpy(), df[r.group].to_numpy()
    out = ranking_metrics(y, predict(model, df[features or cfg.model.features]), g, r.k_values, r.relevant_min, prefix)
    for feature in r.baselines:
        base = ranking_metrics(y, df[feature].to_numpy(np.float64), g, r.k_values, r.relevant_min)
        out |= {f"{prefix}{name}_baseline_{feature}": v for name, v in base.items() if name != "queries"}
    return out


def ranking_training_set(cfg: TenantConfig, ws: Workspace) -> TrainingSet:
    """Judged (and click-labelled) pairs joined point in time with item features, plus the query-item
    features of the retriever built by this features step (its index travels with the set)."""
    r = cfg.ranking
    raw = load_raw(cfg, ws)
    as_of = pd.to_datetime(raw[cfg.data.timestamp], utc=True).max()
    events = with_click_labels(cfg, ws, labelled_as_of(cfg, raw, as_of))
    request_cols = [c.name for c in cfg.features.request.fields if c.name in events.columns]
    keep = list(dict.fromkeys(cfg.features.join_keys + [cfg.data.timestamp, cfg.data.label, r.group, r.item]
                              + ([r.query_text] if r.query_text else []) + request_cols
                              + ([cfg.model.split.column] if cfg.model.split.column else []) + [SOURCE, WEIGHT]))
    frame = training_frame(cfg, ws, events[keep])
    index_dir = None
    if r.retrieval:
        index_dir = index.built_dir(cfg, ws)
        retriever = resolve(r.retrieval.retriever).load(cfg, index_dir)
        pair = retriever.features_for_pairs(frame, r.query_text, r.item)
        frame = pd.concat([frame.drop(columns=[c for c in pair.columns if c in frame.columns]), pair], axis=1)
    return TrainingSet(frame=frame, as_of=as_of, events=events, index_dir=index_dir)


def metric_intervals(cfg: TenantConfig, df: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    """Bootstrap intervals of NDCG@k and MRR over the validation queries (a query's rows move together)."""
    r = cfg.ranking
    values = per_query_metrics(df[cfg.data.label].to_numpy(), scores, df[r.group].to_numpy(), r.k_values,
                               r.relevant_min)
    return confidence.bootstrap(confidence.per_unit_means(values), len(values["mrr"]), cfg.metrics.confidence,
                                "queries")


def train_ranking_and_log(cfg: TenantConfig, ws: Workspace, data: TrainingSet, mlflow_run_id: str,
                          pipeline_run_id: str, lineage: dict[str, Any],
                          baselines: list[Baseline] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    r = cfg.ranking
    as_of, events = data.as_of, data.events
    retriever = resolve(r.retrieval.retriever).load(cfg, data.index_dir) if r.retrieval else None
    train_df, valid_df, test_df = split(cfg, data.frame)
    valid_df = valid_df[valid_df[SOURCE] == "judgment"].reset_index(drop=True)  # evaluate on judgments only

    trainer = resolve_trainer(cfg.model.trainer)
    trained = trainer.train(cfg, train_df, valid_df, ws.tenant(cfg.name) / "ray")
    metrics = evaluate(cfg, trained.model, trainer.predict, valid_df)
    scores = np.asarray(trainer.predict(trained.model, valid_df[cfg.model.features]), dtype=np.float64)
    intervals = metric_intervals(cfg, valid_df, scores)
    y_valid, g_valid = valid_df[cfg.data.label].to_numpy(), valid_df[r.group].to_numpy()
    compared = run_baselines(cfg, baselines or [], BaselineInputs(
        cfg, train_df, valid_df, lambda s: ranking_metrics(y_valid, s, g_valid, r.k_values, r.relevant_min),
        trainer, trained, extra={"storage": ws.tenant(cfg.name) / "ray" / "baselines", "retriever": retriever}))
    champion = evaluate_champion(
        cfg, ws, valid_df, lambda model, predict, feats: evaluate(cfg, model, predict, valid_df, features=feats))
    metrics["rows"] = float(len(valid_df))
    metrics["click_labelled_train_rows"] = float((train_df[SOURCE] == "clicks").sum())
    if test_df is not None:
        metrics |= evaluate(cfg, trained.model, trainer.predict, test_df, prefix="test_")
    retrieval: dict[str, Any] = {}
    if retriever is not None:
        t0 = time.monotonic()
        retrieval = {"recall_at_k": evaluate_recall(retriever, events, cfg),
                     "relevant_min": r.relevant_min, "candidates": r.retrieval.candidates,
                     "rerank": r.retrieval.rerank, "index": getattr(retriever, "info", {}),
                     "seconds": round(time.monotonic() - t0, 2)}
        for name, at in retrieval["recall_at_k"].items():
            metrics |= {f"recall_at_{k}_{name}": v for k, v in at.items()}

    # the index itself was logged with the run by the stage step (training_set.log)
    record = log_training_run(
        cfg, ws, mlflow_run_id, pipeline_run_id, lineage, trainer=trainer, trained=trained, train_df=train_df,
        valid_df=valid_df, as_of=as_of, metrics=metrics, champion=champion, started=started,
        extra_tags={"task": cfg.task},
        extra_params={"train_queries": train_df[r.group].nunique(), "valid_queries": valid_df[r.group].nunique()},
        log_extra=(lambda: log_retrieval(retrieval)) if retrieval else None, baselines=compared,
        intervals=intervals, record_extra={"retrieval": retrieval})
    return record
