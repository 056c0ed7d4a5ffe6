"""`task: binary_classification`, from the ingested snapshot to an MLflow run holding a model worth
reviewing, in two halves that may run in different processes (training/training_set.py):

features step: events labelled by now -> point-in-time features (Feast) = the training set
train step:    time split -> train (Ray) -> metrics (bootstrap intervals), threshold, PR curve, importance,
               baselines on the same rows (the task's, training/baselines.py) -> MLflow run
               (params, metrics, plots, GE report, model with signature and input example, lineage tags)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from mlplatform.config import TenantConfig
from mlplatform.data.ingest import load_raw
from mlplatform.features.store import training_frame
from mlplatform.monitoring.drift import DRIFT_REFERENCE_ARTIFACT, drift_reference
from mlplatform.registry import champion_eval
from mlplatform.serving.metrics import bucketed_score_ks
from mlplatform.training import confidence
from mlplatform.training.baselines import Baseline, BaselineInputs
from mlplatform.training.baselines import run as run_baselines
from mlplatform.training.champion import evaluate_champion
from mlplatform.training.dataset import labelled_as_of, time_split
from mlplatform.training.evidence import gate_evidence
from mlplatform.training.metrics import classification_metrics, pr_curve_figure, recall_at_fpr
from mlplatform.training.mlflow_log import log_training_run
from mlplatform.training.trainers import resolve_trainer
from mlplatform.training.training_set import TrainingSet
from mlplatform.workspace import Workspace


def classification_training_set(cfg: TenantConfig, ws: Workspace) -> TrainingSet:
    """The events labelled by the snapshot's end, joined point in time with their features."""
    raw = load_raw(cfg, ws)
    as_of = pd.to_datetime(raw[cfg.data.timestamp], utc=True).max()
    events = labelled_as_of(cfg, raw, as_of)
    request_cols = [c.name for c in cfg.features.request.fields if c.name in events.columns]
    keep = list(dict.fromkeys(cfg.features.join_keys + [cfg.data.timestamp, cfg.data.label] + request_cols))
    return TrainingSet(frame=training_frame(cfg, ws, events[keep]), as_of=as_of)


def metric_intervals(cfg: TenantConfig, y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Bootstrap intervals over validation rows of the threshold-free metrics (PR-AUC, ROC-AUC, recall at
    the FPR); the threshold-dependent figures are left out (the threshold is chosen on these rows)."""
    fpr_name = f"recall_at_fpr_{cfg.metrics.recall_at_fpr:g}"

    def statistic(idx: np.ndarray) -> dict[str, float]:
        yy, ss = y[idx], scores[idx]
        if yy.min() == yy.max():  # a resample with one class: the metrics are undefined
            return {}
        return {"pr_auc": float(average_precision_score(yy, ss)), "roc_auc": float(roc_auc_score(yy, ss)),
                fpr_name: recall_at_fpr(yy, ss, cfg.metrics.recall_at_fpr)}

    return confidence.bootstrap(statistic, len(y), cfg.metrics.confidence, "validation rows")


def train_classification_and_log(cfg: TenantConfig, ws: Workspace, data: TrainingSet, mlflow_run_id: str,
                                 pipeline_run_id: str, lineage: dict[str, Any],
                                 baselines: list[Baseline] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    as_of = data.as_of
    train_df, valid_df = time_split(cfg, data.frame)

    trainer = resolve_trainer(cfg.model.trainer)
    trained = trainer.train(cfg, train_df, valid_df, ws.tenant(cfg.name) / "ray")
    selection = getattr(trained, "selection", None) or {}
    if selection.get("thin"):  # the window could not choose: say how the model was chosen instead
        logging.getLogger(__name__).warning("%s: %s", cfg.name, selection["message"])
    scores = trainer.predict(trained.model, valid_df)
    y_valid = valid_df[cfg.data.label].to_numpy()
    metrics = classification_metrics(y_valid, scores, cfg.metrics)
    evidence = gate_evidence(y_valid, metrics, cfg.metrics.gates.minimum)
    if not evidence["sufficient"]:
        logging.getLogger(__name__).warning("%s: %s", cfg.name, evidence["message"])

    def champion_metrics(model, predict, _) -> dict[str, float]:
        champion_scores = predict(model, valid_df)
        # score_ks: how far apart the two models' scores are on these rows, the divergence the
        # rollout's score check expects to see online between this model and that champion
        return classification_metrics(y_valid, champion_scores, cfg.metrics) | {
            champion_eval.SCORE_KS: bucketed_score_ks(scores, champion_scores)}

    champion = evaluate_champion(cfg, ws, valid_df, champion_metrics)
    intervals = metric_intervals(cfg, y_valid, np.asarray(scores, dtype=np.float64))
    compared = run_baselines(cfg, baselines or [], BaselineInputs(
        cfg, train_df, valid_df, lambda s: classification_metrics(y_valid, s, cfg.metrics), trainer, trained))

    def classification_artifacts() -> None:
        mlflow.log_figure(pr_curve_figure(y_valid, scores, f"{cfg.name}: validation PR curve"), "plots/pr_curve.png")
        # what the predictor compares live traffic with: the validation window (the newest data,
        # out-of-sample scores), binned at its quantiles (mlplatform.monitoring.drift)
        mlflow.log_text(drift_reference(cfg, valid_df, scores).to_json(), DRIFT_REFERENCE_ARTIFACT)
        mlflow.log_dict(evidence, "evidence.json")
        mlflow.set_tag("evidence", "sufficient" if evidence["sufficient"] else evidence["message"])

    return log_training_run(
        cfg, ws, mlflow_run_id, pipeline_run_id, lineage, trainer=trainer, trained=trained, train_df=train_df,
        valid_df=valid_df, as_of=as_of, metrics=metrics, champion=champion, started=started,
        log_extra=classification_artifacts, baselines=compared, intervals=intervals,
        record_extra={"evidence": evidence, "selection": selection})
